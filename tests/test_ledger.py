"""The ledger: permissions, migrations, concurrency and crash safety (kill -9 in a subprocess)."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import anyio
import pytest
from mcp import Client

from koji_mcp.interviews.ledger import _MIGRATIONS, LEDGER_FILE, Ledger
from koji_mcp.server.app import build_server
from tests.conftest import subprocess_env, seed

pytestmark = pytest.mark.anyio


def test_files_are_private_and_schema_is_versioned(tmp_path) -> None:
    state = tmp_path / "state" / "nested"
    ledger = Ledger.open(str(state), "http://k")
    seed(ledger, "i1", "st_live_secret")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / LEDGER_FILE).stat().st_mode) == 0o600
    db = sqlite3.connect(state / LEDGER_FILE)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    ledger.close()
    reopened = Ledger.open(str(state), "http://k")  # migrations are idempotent
    assert reopened.get("i1").session_token == "st_live_secret"


def test_newer_schema_is_refused_clearly(tmp_path) -> None:
    Ledger.open(str(tmp_path), "http://k").close()
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(RuntimeError, match="written by a newer koji-mcp"):
        Ledger.open(str(tmp_path), "http://k")


def test_rows_are_scoped_by_owner_and_base_url(tmp_path) -> None:
    a = Ledger.open(str(tmp_path), "http://sandbox")
    b = Ledger.open(str(tmp_path), "https://koji.so")
    seed(a, "i1", "t", owner="alice")
    assert a.get("i1", "alice") is not None
    assert a.get("i1", "bob") is None and a.get("i1") is None
    assert b.get("i1", "alice") is None


def test_memory_ledger_keeps_nothing_on_disk(tmp_path) -> None:
    ledger = Ledger.open(":memory:", "http://k")
    seed(ledger, "i1", "t")
    assert ledger.get("i1") is not None and list(tmp_path.iterdir()) == []


def test_threads_writing_at_once_lose_nothing(tmp_path) -> None:
    ledger = Ledger.open(str(tmp_path), "http://k")

    def writer(n: int) -> None:
        for i in range(50):
            seed(ledger, f"t{n}-{i}", f"st_{n}_{i}")
            ledger.update_status(f"t{n}-{i}", "local", "ended")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries, total = ledger.list(limit=1000)
    assert total == 400 and {e.status for e in entries} == {"ended"}


async def test_concurrent_tool_calls_each_get_a_row(sandbox, settings) -> None:
    results = []
    async with Client(build_server(settings), mode="legacy") as c:
        async def one(n: int) -> None:
            r = await c.call_tool("start_interview", {"respondent": {"external_id": f"c{n}"}})
            results.append(r.structured_content["interview_id"])

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(one, n)
    ledger = Ledger.open(settings.state_dir, sandbox.base_url)
    entries, total = ledger.list(limit=100)
    assert total == 20 and sorted(e.interview_id for e in entries) == sorted(results)
    assert all(e.session_token for e in entries)


WRITER = """
import sys
from koji_mcp.interviews.ledger import Ledger
ledger = Ledger.open(sys.argv[1], "http://k")
i = 0
print("ready", flush=True)
while True:
    seq = ledger.reserve(metadata={"i": i})
    ledger.confirm(seq, interview_id=f"k{i}", session_token=f"st_live_{i}", initial_message=None)
    ledger.update_status(f"k{i}", "local", "completed", completion={"completion_reason": "manual"})
    i += 1
"""


def test_kill_9_during_writes_leaves_a_consistent_ledger(tmp_path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], env=subprocess_env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.7)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(tmp_path / LEDGER_FILE)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    ledger = Ledger.open(str(tmp_path), "http://k")
    entries, total = ledger.list(limit=100_000)
    assert total > 10
    for e in entries:  # every row that exists is whole: token, metadata, and a consistent status
        if e.status == "starting":  # killed between reserve and confirm: a trace, as start_once intends
            assert e.session_token is None and e.interview_id.startswith("pending-") and e.metadata
            continue
        assert e.session_token == f"st_live_{e.interview_id[1:]}" and e.metadata == {"i": int(e.interview_id[1:])}
        assert e.status in {"active", "completed"}
        assert (e.status == "completed") == (e.completed_at is not None)


def test_a_v1_ledger_is_upgraded_in_place(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    old = sqlite3.connect(state / LEDGER_FILE)
    old.executescript(_MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    old.execute("INSERT INTO interviews (interview_id, base_url, status, created_at, updated_at) "
                "VALUES ('i1', 'http://k', 'active', 't', 't')")
    old.commit()
    old.close()
    ledger = Ledger.open(str(state), "http://k")
    entry = ledger.get("i1")
    ledger.close()
    assert entry is not None and entry.status == "active" and entry.resolved_by is None
    assert sqlite3.connect(state / LEDGER_FILE).execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
