"""The ledger: permissions, migrations, concurrency and crash safety (kill -9 in a subprocess)."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path
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


async def test_concurrent_tool_calls_each_get_a_row(sandbox, settings) -> None:
    results = []
    async with Client(build_server(settings), mode="legacy") as c:
        async def one(n: int) -> None:
            r = await c.call_tool("start_interview", {"respondent": {"external_id": f"c{n}"}})
            results.append(r.structured_content["interview_id"])

        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(one, n)
    ledger = Ledger.open(settings.state_dir, sandbox.base_url, database_url=settings.ledger_database_url)
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


# -- both engines (SQLite always; PostgreSQL under `make test-postgres`) ----------------------------------


def open_ledger(backend, base_url: str = "http://k") -> Ledger:
    return Ledger.open(backend.state_dir, base_url, database_url=backend.database_url)


def test_rows_are_scoped_and_migrated_on_either_engine(ledger_backend) -> None:
    a, b = open_ledger(ledger_backend, "http://sandbox"), open_ledger(ledger_backend, "https://koji.so")
    try:
        seed(a, "i1", "st_live_secret", owner="alice", external_id="u-1", metadata={"plan": "pro"})
        assert a.get("i1", "alice").session_token == "st_live_secret"
        assert a.get("i1", "alice").metadata == {"plan": "pro"}
        assert a.get("i1", "bob") is None and a.get("i1") is None and b.get("i1", "alice") is None
        assert a.readiness() is None and a.count() == (1, 1) and b.count() == (0, 1)
        a.update_status("i1", "alice", "completed", completion={"completion_reason": "manual"})
        done = a.get("i1", "alice")
        assert done.status == "completed" and done.completed_at and done.completion == {"completion_reason": "manual"}
    finally:
        a.close()
        b.close()


def test_a_newer_schema_is_refused_on_either_engine(ledger_backend) -> None:
    open_ledger(ledger_backend).close()
    if ledger_backend.database_url:
        import psycopg

        with psycopg.connect(ledger_backend.database_url, autocommit=True) as db:
            db.execute("INSERT INTO koji_mcp_schema (version) VALUES (99)")
    else:
        with sqlite3.connect(Path(ledger_backend.state_dir) / LEDGER_FILE) as db:
            db.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match=r"written by a newer koji-mcp \(schema v99, this one knows v\d+\)"):
        open_ledger(ledger_backend)


def test_openers_racing_on_a_new_ledger_migrate_it_once(ledger_backend) -> None:
    """Eight processes' worth of openers at once: the migrations run once, under the engine's lock."""
    errors: list[BaseException] = []
    opened: list[Ledger] = []

    def opener() -> None:
        try:
            opened.append(open_ledger(ledger_backend))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 8
    for ledger in opened:
        ledger.close()
    if ledger_backend.database_url:
        import psycopg

        with psycopg.connect(ledger_backend.database_url) as db:
            versions = [v for (v,) in db.execute("SELECT version FROM koji_mcp_schema ORDER BY version")]
        assert versions == list(range(1, len(_MIGRATIONS) + 1))


def race_reservations(ledgers: list[Ledger], people: int, writers: int, offset: int) -> tuple[int, int]:
    """`writers` threads over the ledgers (as replicas would be) reserve the same people with unless_known,
    writer n starting at person n * offset (0: all of them on each person at the same moment).
    Returns (reservations won, rows in the ledger)."""
    won: list[int] = []

    def writer(n: int) -> None:
        for i in range(people):
            got = ledgers[n % len(ledgers)].reserve(external_id=f"p-{(i + n * offset) % people}", unless_known=True)
            if isinstance(got, int):
                won.append(got)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries, total = ledgers[0].list(limit=1000)
    assert sorted(e.external_id for e in entries) == sorted({e.external_id for e in entries})  # nobody twice
    return len(won), total


def test_racing_reservations_invite_each_person_once(ledger_backend) -> None:
    """Eight writers (two ledgers, as two replicas would be) reserve the same 40 people at once with
    unless_known: the database decides, so exactly one reservation per person is written."""
    ledgers = [open_ledger(ledger_backend), open_ledger(ledger_backend)]
    try:
        assert race_reservations(ledgers, people=40, writers=8, offset=5) == (40, 40)
        assert race_reservations(ledgers, people=40, writers=8, offset=0) == (0, 40)  # all known by now
    finally:
        for ledger in ledgers:
            ledger.close()


def test_threads_writing_at_once_lose_nothing_on_either_engine(ledger_backend) -> None:
    ledger = open_ledger(ledger_backend)

    def writer(n: int) -> None:
        for i in range(25):
            seed(ledger, f"t{n}-{i}", f"st_{n}_{i}")
            ledger.update_status(f"t{n}-{i}", "local", "ended")

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries, total = ledger.list(limit=1000)
    ledger.close()
    assert total == 200 and {e.status for e in entries} == {"ended"}


def test_search_reads_the_same_on_either_engine(ledger_backend) -> None:
    ledger = open_ledger(ledger_backend)
    seed(ledger, "iv-zoe", "t", external_id="u-1", display_name="Zoë Café")
    seed(ledger, "iv-ten", "t", external_id="u-10", display_name="Ten")
    seed(ledger, "iv-dash", "t", external_id="u-2", display_name="Dash Board")
    assert ledger.index_text("iv-ten", "local", summary="Dashboards load slowly", themes="speed",
                             transcript="I waited for the dashboard") is True
    assert ledger.index_text("nope", "local", summary="", themes="", transcript="") is False
    found = {q: [e.interview_id for e in ledger.search("local", q)] for q in
             ["zoe", "CAFE", "u-1", "dash", "waited", 'NEAR( "x*', "absent"]}
    assert ledger.index_text("iv-dash", "local", summary="u-1 u-1", themes="u-1", transcript="about u-1, u-1 again")
    found["exact"] = [e.interview_id for e in ledger.search("local", "u-1")]
    ledger.close()
    assert found["zoe"] == ["iv-zoe"] and found["CAFE"] == ["iv-zoe"]  # case and diacritics folded
    assert found["u-1"] == ["iv-zoe"]  # short last word: whole words, so not u-10
    assert found["dash"][0] in {"iv-ten", "iv-dash"} and set(found["dash"]) == {"iv-ten", "iv-dash"}  # prefix
    assert found["waited"] == ["iv-ten"] and found['NEAR( "x*'] == [] and found["absent"] == []
    assert found["exact"] == ["iv-zoe", "iv-dash"]  # the exact external_id first, however often others say it


def test_resolve_and_unknown_rows_on_either_engine(ledger_backend) -> None:
    ledger = open_ledger(ledger_backend)
    seq = ledger.reserve(external_id="p-1")
    placeholder = ledger.mark_unknown(seq, "read timeout")
    before, after = ledger.resolve(placeholder, started_id="koji-1", by="ops")
    again = ledger.reserve(external_id="p-1", unless_known=True)
    ledger.close()
    assert (before.status, after.status, after.interview_id, after.resolved_from) == \
        ("unknown", "active", "koji-1", placeholder)
    assert not isinstance(again, int) and again.interview_id == "koji-1"  # settled: the person is not invited twice


def test_a_database_that_appears_later_becomes_ready_and_never_shows_its_password(postgres_cluster, caplog) -> None:
    """A fresh deployment: koji-mcp starts before its database exists. Open carries on, every use says
    'not ready' (nothing sent), readiness says why, and it becomes ready by itself once the database is there."""
    import logging

    from koji_mcp.interviews import database
    from koji_mcp.interviews.ledger import StorageError

    name = f"later_{os.getpid()}"
    url = postgres_cluster.url.rsplit("/", 1)[0] + f"/{name}"
    password = postgres_cluster.password
    caplog.set_level(logging.DEBUG)
    began = time.monotonic()
    ledger = Ledger.open(":memory:", "http://k", database_url=url)
    try:
        assert time.monotonic() - began < database.PG_CONNECT_WAIT + 2
        reason = ledger.readiness()
        assert reason is not None and f"does not exist" in reason and password not in reason
        with pytest.raises(StorageError, match="is not ready") as refused:
            ledger.reserve(external_id="p-1")
        assert password not in refused.value.message and "KOJI_MCP_DATABASE_URL" in refused.value.hint
        import psycopg

        with psycopg.connect(postgres_cluster.url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        deadline = time.monotonic() + database.PG_RETRY_EVERY * 5
        while ledger.readiness() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ledger.readiness() is None
        assert isinstance(ledger.reserve(external_id="p-1"), int)
    finally:
        ledger.close()
        postgres_cluster.drop_database(name)
    assert password not in caplog.text and "the ledger database" in caplog.text


PG_WRITER = """
import sys
from koji_mcp.interviews.ledger import Ledger
ledger = Ledger.open(":memory:", "http://k", database_url=sys.argv[1])
i = 0
print("ready", flush=True)
while True:
    seq = ledger.reserve(metadata={"i": i}, external_id=f"p{i}", unless_known=True)
    ledger.confirm(seq, interview_id=f"k{i}", session_token=f"st_live_{i}", initial_message=None)
    ledger.update_status(f"k{i}", "local", "completed", completion={"completion_reason": "manual"})
    i += 1
"""


def test_kill_9_during_writes_leaves_a_consistent_postgres_ledger(postgres_url) -> None:
    proc = subprocess.Popen([sys.executable, "-c", PG_WRITER, postgres_url], env=subprocess_env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ledger = Ledger.open(":memory:", "http://k", database_url=postgres_url)
    entries, total = ledger.list(limit=100_000)
    ledger.close()
    assert total > 10
    for e in entries:  # every row is whole: each transaction landed entirely or not at all
        if e.status == "starting":
            assert e.session_token is None and e.interview_id.startswith("pending-") and e.metadata
            continue
        assert e.session_token == f"st_live_{e.interview_id[1:]}" and e.metadata == {"i": int(e.interview_id[1:])}
        assert e.status in {"active", "completed"} and (e.status == "completed") == (e.completed_at is not None)


def test_a_database_lost_mid_run_fails_fast_and_says_so(postgres_cluster) -> None:
    """The database goes away under a running server: the first call fails within the pool's wait (nothing
    sent), the next ones at once (no event loop held for seconds per call) until it answers again."""
    from koji_mcp.interviews import database
    from koji_mcp.interviews.ledger import StorageError

    url = postgres_cluster.new_database()
    ledger = Ledger.open(":memory:", "http://k", database_url=url)
    try:
        assert isinstance(ledger.reserve(external_id="p-1"), int)
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])  # its connections are cut
        began = time.monotonic()
        with pytest.raises(StorageError, match="could not be") as first:
            ledger.reserve(external_id="p-2")
        assert time.monotonic() - began < database.PG_CHECKOUT_WAIT + 2
        began = time.monotonic()
        with pytest.raises(StorageError, match="could not be") as second:
            ledger.get("anything")
        assert time.monotonic() - began < 0.2  # failed fast
        assert ledger.readiness() is not None
        for message in (first.value.message, second.value.message):
            assert postgres_cluster.password not in message
    finally:
        ledger.close()


def test_reservations_stay_exclusive_under_a_stricter_default_isolation(postgres_cluster) -> None:
    """A database whose default isolation is REPEATABLE READ must not let two writers both miss each
    other's reservation: the ledger sets READ COMMITTED itself."""
    import psycopg

    url = postgres_cluster.new_database()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_cluster.url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{name}\" SET default_transaction_isolation = 'repeatable read'")
    ledgers = [Ledger.open(":memory:", "http://k", database_url=url) for _ in range(2)]
    try:
        assert race_reservations(ledgers, people=30, writers=6, offset=0) == (30, 30)
    finally:
        for ledger in ledgers:
            ledger.close()
        postgres_cluster.drop_database(name)


def test_a_database_url_with_a_stray_percent_is_refused_without_showing_it() -> None:
    from koji_mcp.config import ConfigError, Settings

    with pytest.raises(ConfigError) as refused:
        Settings.load({"KOJI_MCP_DATABASE_URL": "postgresql://koji:s3cr%zzet-pw@db:5432/koji"})
    assert "not percent-encoded" in str(refused.value) and "s3cr" not in str(refused.value)
