"""KOJI_TIMEOUT bounds a whole Koji exchange: a dripping upstream cannot hold a start (or a batch) open."""

from __future__ import annotations

import csv
import signal
import sqlite3
import subprocess
import time

import pytest
from mcp import Client

from koji_mcp.sandbox import DEMO_KEY
from koji_mcp.server.app import build_server
from tests.conftest import koji_mcp_command, make_settings, subprocess_env
from tests.drip import DripServer

START_LINE = b"POST /api/v1/interviews/start HTTP/1.1"


@pytest.mark.anyio
async def test_a_dripping_start_becomes_unknown_within_the_deadline(tmp_path) -> None:
    with DripServer(interval=2.0) as drip:
        settings = make_settings(drip.base_url, timeout=4.0, state_dir=str(tmp_path / "state"))
        async with Client(build_server(settings), mode="legacy") as client:
            began = time.monotonic()
            result = await client.call_tool("start_interview", {"respondent": {"external_id": "u1"}})
            elapsed = time.monotonic() - began
            listed = await client.call_tool("list_interviews", {"status": "unknown"})
    assert result.is_error and result.structured_content is None
    text = result.content[0].text
    assert text.startswith("Koji timed out: Koji did not answer within 4 s after the request was sent\n"
                           "Outcome unknown: the interview may have been started"), text
    assert "(status 'unknown')" in text
    assert 3.9 < elapsed < 6.0, elapsed  # KOJI_TIMEOUT=4, not the 12 s the drip lasts
    assert len(drip.requests) == 1 and drip.requests[0].startswith(START_LINE)  # never resent
    assert [i["external_id"] for i in listed.structured_content["interviews"]] == ["u1"]
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    assert db.execute("SELECT status, external_id FROM interviews").fetchall() == [("unknown", "u1")]


def test_ctrl_c_on_a_batch_against_a_dripping_upstream_ends_within_the_deadline(tmp_path) -> None:
    src = tmp_path / "people.csv"
    src.write_text("external_id\nu1\nu2\nu3\n")
    state = tmp_path / "state"
    with DripServer(interval=2.0) as drip:
        env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=drip.base_url, KOJI_MCP_STATE_DIR=str(state),
                             KOJI_TIMEOUT="4")
        proc = subprocess.Popen([*koji_mcp_command(), "batch", str(src), "--concurrency", "1"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        try:
            drip.wait_for_requests(1)
            proc.send_signal(signal.SIGINT)
            interrupted = time.monotonic()
            out, err = proc.communicate(timeout=15)
            ended = time.monotonic() - interrupted
        finally:
            proc.kill()
        assert len(drip.requests) == 1  # the stop let nothing new start, and nothing was resent
    assert ended < 5.5, f"the batch took {ended:.1f} s to stop after Ctrl-C"
    assert proc.returncode == 1, err
    assert "stopping: finishing the starts in flight" in err
    with open(tmp_path / "people.results.csv", newline="") as handle:
        rows = [(r["external_id"], r["outcome"]) for r in csv.DictReader(handle)]
    assert rows == [("u1", "unknown"), ("u2", "not_reached"), ("u3", "not_reached")]
    db = sqlite3.connect(state / "ledger.sqlite3")
    assert db.execute("SELECT status, external_id FROM interviews").fetchall() == [("unknown", "u1")]
