"""Many processes opening one new ledger at the same moment all succeed (WAL switch and migration retry on busy)."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
from pathlib import Path

from koji_mcp.interviews.ledger import LEDGER_FILE, Ledger, _MIGRATIONS
from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env

OPENERS = 40


def _open(state: str, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    barrier.wait()
    try:
        ledger = Ledger.open(state, "https://koji.so")
        seq = ledger.reserve(external_id=multiprocessing.current_process().name)
        ledger.confirm(seq, interview_id=f"i-{multiprocessing.current_process().name}", session_token="t",
                       initial_message=None)
        ledger.close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(f"{type(exc).__name__}: {exc}")


def test_forty_processes_open_a_new_ledger_at_once(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(OPENERS), ctx.Queue()
    state = str(tmp_path / "state")
    procs = [ctx.Process(target=_open, args=(state, barrier, results)) for _ in range(OPENERS)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(30)
    failures = [o for o in outcomes if o != "ok"]
    assert failures == [], f"{len(failures)} of {OPENERS} openers failed: {failures[:3]}"
    db = sqlite3.connect(tmp_path / "state" / LEDGER_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    assert db.execute("SELECT COUNT(*) FROM interviews").fetchone()[0] == OPENERS


def test_servers_started_at_the_same_moment_on_one_state_dir_all_come_up(tmp_path: Path) -> None:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL="https://koji.so",
                         KOJI_MCP_STATE_DIR=str(tmp_path / "state"))
    # stdin at EOF: each server opens the ledger, serves nothing and exits 0
    procs = [subprocess.Popen([*koji_mcp_command(), "serve"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    codes = [(proc.wait(60), proc.stderr.read()) for proc in procs]
    assert [code for code, _ in codes] == [0] * 6, [err for code, err in codes if code]


HOLD = """
import os, sqlite3, sys, time
path = sys.argv[1]
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
db = sqlite3.connect(path, isolation_level=None)
db.execute("BEGIN IMMEDIATE")  # what another opener holds while it sets the new ledger up
print("held", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def test_a_server_starting_while_another_opener_holds_the_new_ledger_waits_and_comes_up(tmp_path: Path) -> None:
    import sys

    state = tmp_path / "state"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(state / LEDGER_FILE), "1.5"], stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline() == "held\n"
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL="https://koji.so", KOJI_MCP_STATE_DIR=str(state))
    proc = subprocess.run([*koji_mcp_command(), "serve"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)
    holder.wait(10)
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(state / LEDGER_FILE)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
