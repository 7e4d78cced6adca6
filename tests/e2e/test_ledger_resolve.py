"""Unknown outcomes stay unknown on rerun (exit 1, with their ids) until `koji-mcp ledger resolve` settles them."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from mcp import Client

from koji_mcp.sandbox import DEMO_KEY
from koji_mcp.server.app import build_server
from tests.conftest import koji_mcp_command, make_settings, subprocess_env
from tests.drip import DripServer

START = "/api/v1/interviews/start"


def cli(args: list[str], base_url: str, state: Path) -> subprocess.CompletedProcess:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=base_url, KOJI_MCP_STATE_DIR=str(state))
    return subprocess.run([*koji_mcp_command(), *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def outcomes(path: Path) -> list[tuple[str, str, str]]:
    with open(path, newline="") as handle:
        return [(r["external_id"], r["outcome"], r["interview_id"]) for r in csv.DictReader(handle)]


def summary(stdout: str) -> list[str]:
    """The lines from the summary on (per-row progress lines come first when stdout is not a terminal)."""
    lines = stdout.splitlines()
    return lines[next(i for i, line in enumerate(lines) if " participant(s): " in line):]


def ledger_row(state: Path, seq: int) -> tuple:
    db = sqlite3.connect(state / "ledger.sqlite3")
    return db.execute("SELECT status, interview_id, session_token, resolved_by, resolved_at IS NOT NULL, "
                      "resolved_from FROM interviews WHERE seq = ?", (seq,)).fetchone()


@pytest.mark.anyio
async def test_an_unknown_start_counts_as_unknown_on_rerun_until_resolved_as_started(sandbox, tmp_path) -> None:
    src, state = tmp_path / "people.csv", tmp_path / "state"
    src.write_text("external_id\nu0\nu1\nu2\n")
    sandbox.fault(path=START, status=502, body="bad gateway", content_type="text/plain")
    first = cli(["batch", str(src), "--concurrency", "1"], sandbox.base_url, state)
    assert first.returncode == 1, first.stderr
    [(_, kind, placeholder), *rest] = outcomes(tmp_path / "people.results.csv")
    assert kind == "unknown" and placeholder.startswith("unknown-") and [k for _, k, _ in rest] == ["started"] * 2

    again = cli(["batch", str(src)], sandbox.base_url, state)
    assert again.returncode == 1, again.stdout
    assert outcomes(tmp_path / "people.results.csv")[0] == ("u0", "unknown", placeholder)
    lines = summary(again.stdout)
    assert lines[0] == f"3 participant(s): 2 skipped, 1 unknown. Results: {tmp_path / 'people.results.csv'}"
    assert lines[1:3] == ["Unknown outcomes may have started (and spent credits); they are never started again by a "
                          "rerun:", f"  row 1 u0: {placeholder}"]
    assert "koji-mcp ledger resolve ID --started INTERVIEW_ID" in lines[3]

    resolved = cli(["ledger", "resolve", placeholder, "--started", "iv_found_on_dashboard", "--by", "alice"],
                   sandbox.base_url, state)
    assert resolved.returncode == 0, resolved.stderr
    assert resolved.stdout.startswith(f"row 1 (external_id u0): {placeholder} is now interview iv_found_on_dashboard "
                                      "(status active), recorded by alice at ")
    assert "no session token for it" in resolved.stdout
    assert ledger_row(state, 1) == ("active", "iv_found_on_dashboard", None, "alice", 1, placeholder)

    settled = cli(["batch", str(src)], sandbox.base_url, state)
    assert settled.returncode == 0 and "3 skipped" in settled.stdout
    assert len([r for r in sandbox.requests() if r["path"] == START]) == 3  # nothing was ever resent

    twice = cli(["ledger", "resolve", placeholder, "--not-started"], sandbox.base_url, state)
    assert twice.returncode == 2 and twice.stdout == ""
    assert twice.stderr.startswith("koji-mcp ledger: row 1 (iv_found_on_dashboard) is 'active' by alice at ")
    missing = cli(["ledger", "resolve", "unknown-nope", "--not-started"], sandbox.base_url, state)
    assert missing.returncode == 2 and missing.stderr.startswith("koji-mcp ledger: no row 'unknown-nope' in the ledger")

    settings = make_settings(sandbox.base_url, state_dir=str(state))
    async with Client(build_server(settings), mode="legacy") as client:
        relay = await client.call_tool("send_interview_message", {"interview_id": "iv_found_on_dashboard",
                                                                  "content": "hello"})
    assert relay.is_error
    assert relay.content[0].text.startswith("Interview 'iv_found_on_dashboard' was recorded by hand after a start "
                                            "with an unknown outcome (koji-mcp ledger resolve, by alice at ")
    assert "send_interview_message is not possible for it" in relay.content[0].text


def test_a_start_left_starting_by_kill_9_counts_as_unknown_until_resolved_as_not_started(tmp_path) -> None:
    src, state = tmp_path / "people.csv", tmp_path / "state"
    src.write_text("external_id\nu1\n")
    with DripServer() as drip:  # the start never completes: kill -9 catches it in flight
        env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=drip.base_url, KOJI_MCP_STATE_DIR=str(state))
        proc = subprocess.Popen([*koji_mcp_command(), "batch", str(src)], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        drip.wait_for_requests(1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        status, pending = ledger_row(state, 1)[:2]
        assert status == "starting" and pending.startswith("pending-")

        rerun = cli(["batch", str(src)], drip.base_url, state)
        assert rerun.returncode == 1, rerun.stderr
        assert summary(rerun.stdout)[:3] == [
            f"1 participant(s): 1 unknown. Results: {tmp_path / 'people.results.csv'}",
            "Unknown outcomes may have started (and spent credits); they are never started again by a rerun:",
            f"  row 1 u1: {pending}",
        ]
        assert len(drip.requests) == 1  # not resent

        bad = cli(["ledger", "resolve", "1", "--started", "unknown-123"], drip.base_url, state)
        assert bad.returncode == 2 and "--started needs the interview id Koji shows" in bad.stderr
        resolved = cli(["ledger", "resolve", "u1", "--not-started"], drip.base_url, state)  # by external_id
        assert resolved.returncode == 0, resolved.stderr
        assert resolved.stdout.startswith(f"row 1 (external_id u1): {pending} settled as not started, recorded by ")
        assert resolved.stdout.rstrip().endswith("u1 is free again: the next batch or start_interviews invites them.")
        status, _, _, by, stamped, origin = ledger_row(state, 1)
        assert (status, stamped, origin) == ("not_started", 1, pending) and by

        dry = cli(["batch", str(src), "--dry-run"], drip.base_url, state)
        assert dry.returncode == 0 and "dry run: 1 participant(s): 1 would start." in dry.stdout


def test_ledger_resolve_help_explains() -> None:
    proc = subprocess.run([*koji_mcp_command(), "ledger", "resolve", "--help"], capture_output=True, text=True,
                          env=subprocess_env(), timeout=30)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "(--started INTERVIEW_ID | --not-started)" in text
    assert "koji-mcp never got its session token, so it cannot relay messages to it or complete it" in text
