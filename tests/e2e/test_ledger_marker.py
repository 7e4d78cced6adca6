"""An emptied ledger does not look new: batch (CLI) and start_interviews refuse to start anyone against it."""

from __future__ import annotations

import subprocess

import pytest
from mcp import Client

from koji_mcp.sandbox import DEMO_KEY
from koji_mcp.server.app import build_server
from tests.conftest import koji_mcp_command, make_settings, subprocess_env

START = "/api/v1/interviews/start"


def batch(args: list[str], sandbox, state) -> subprocess.CompletedProcess:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(state))
    return subprocess.run([*koji_mcp_command(), "batch", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.anyio
async def test_a_truncated_ledger_is_refused_by_batch_and_start_interviews(sandbox, tmp_path) -> None:
    src, state = tmp_path / "people.csv", tmp_path / "state"
    src.write_text("external_id\nu1\nu2\nu3\n")
    first = batch([str(src)], sandbox, state)
    assert first.returncode == 0, first.stderr
    assert (state / "ledger.starts").read_text() == "3\n"
    subprocess.run(["truncate", "-s", "0", str(state / "ledger.sqlite3")], check=True)
    sandbox.http.delete("/_sandbox/requests")

    expected = (f"the ledger {state / 'ledger.sqlite3'} holds 0 recorded start(s) but once held 3 "
                f"({state / 'ledger.starts'}): it lost rows (emptied, truncated or replaced), so it cannot tell who "
                "was already invited and nothing will be started; restore it from a backup, or move both files aside "
                "to start afresh")
    for args in ([str(src)], [str(src), "--dry-run"], [str(src), "--force"]):
        again = batch(args, sandbox, state)
        assert (again.returncode, again.stdout, again.stderr) == (2, "", f"koji-mcp batch: {expected}\n"), args

    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(state))
    doctor = subprocess.run([*koji_mcp_command(), "doctor"], env=env, capture_output=True, text=True, timeout=60)
    assert doctor.returncode == 2 and f"✗ {expected}" in doctor.stdout.splitlines()

    settings = make_settings(sandbox.base_url, state_dir=str(state))
    async with Client(build_server(settings), mode="legacy") as client:
        result = await client.call_tool("start_interviews", {"respondents": [{"external_id": "u1"}]})
    assert result.is_error and result.structured_content is None
    assert result.content[0].text == (f"Nothing was sent to Koji: {expected}. Tell the user: no batch can start "
                                      "until the ledger is restored (or deliberately set aside).")
    assert [r for r in sandbox.requests() if r["path"] == START and r["status"] == 201] == []  # doctor only probes


def test_the_marker_counts_unknown_and_resolved_starts_and_survives_reopening(sandbox, tmp_path) -> None:
    src, state = tmp_path / "people.csv", tmp_path / "state"
    src.write_text("external_id\nu1\nu2\n")
    sandbox.fault(path=START, status=502, body="bad gateway", content_type="text/plain")
    first = batch([str(src), "--concurrency", "1"], sandbox, state)
    assert first.returncode == 1
    assert (state / "ledger.starts").read_text() == "2\n"  # one started, one unknown: both recorded
    rerun = batch([str(src)], sandbox, state)
    assert rerun.returncode == 1 and "1 skipped, 1 unknown" in rerun.stdout  # an intact ledger is not refused
    (state / "ledger.starts").unlink()  # a ledger from before the marker: counting starts at the next open
    dry = batch([str(src), "--dry-run"], sandbox, state)
    assert dry.returncode == 1 and (state / "ledger.starts").read_text() == "2\n"
