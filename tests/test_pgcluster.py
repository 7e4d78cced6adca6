"""The PostgreSQL test harness (tests/pgcluster.py, the postgres fixtures): a real throwaway cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.conftest import ROOT, LedgerBackend
from tests.pgcluster import PostgresCluster, PostgresUnavailable


@pytest.mark.postgres
def test_cluster_starts_fast_and_local(postgres_cluster: PostgresCluster) -> None:
    with psycopg.connect(postgres_cluster.url) as conn:
        assert conn.execute("SHOW server_version_num").fetchone()[0] >= "130000"
        assert conn.execute("SHOW fsync").fetchone()[0] == "off"
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert conn.execute("SHOW server_encoding").fetchone()[0] == "UTF8"
        assert int(conn.execute("SHOW max_connections").fetchone()[0]) >= 200
        assert conn.execute("SELECT inet_server_port()").fetchone()[0] == postgres_cluster.port
    assert postgres_cluster.socket_dir.is_relative_to(postgres_cluster.base_dir)
    assert any(p.name.startswith(".s.PGSQL.") for p in postgres_cluster.socket_dir.iterdir())


@pytest.mark.postgres
def test_fresh_databases_are_isolated(postgres_cluster: PostgresCluster, postgres_url: str) -> None:
    other = postgres_cluster.new_database()
    assert urlsplit(other).path != urlsplit(postgres_url).path
    with psycopg.connect(postgres_url) as a:
        a.execute("CREATE TABLE only_here (x int)")
        a.execute("INSERT INTO only_here VALUES (1)")
    with psycopg.connect(other) as b:
        assert b.execute("SELECT to_regclass('only_here')").fetchone()[0] is None
        assert b.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0
    named = postgres_cluster.new_database("koji_named")
    assert urlsplit(named).path == "/koji_named"
    postgres_cluster.drop_database("koji_named")
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(named).close()


@pytest.mark.postgres
def test_password_is_in_the_url_and_enforced_on_tcp(postgres_cluster: PostgresCluster, postgres_url: str) -> None:
    parts = urlsplit(postgres_url)
    assert parts.hostname == "127.0.0.1" and parts.port == postgres_cluster.port
    assert parts.password == postgres_cluster.password and len(parts.password) >= 20
    psycopg.connect(postgres_url).close()
    dbname = parts.path.lstrip("/")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_cluster.url_for(dbname, password="wrong-password")).close()
    no_password = f"postgresql://{postgres_cluster.user}@127.0.0.1:{postgres_cluster.port}/{dbname}"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(no_password, passfile=os.devnull).close()
    assert postgres_cluster.password not in repr(postgres_cluster)
    assert postgres_cluster.password not in (postgres_cluster.base_dir / "server.log").read_text()


@pytest.mark.postgres
def test_started_as_root_runs_as_postgres_and_stop_removes_everything() -> None:
    with PostgresCluster() as pg:
        base, pid_file = pg.base_dir, pg.data_dir / "postmaster.pid"
        pid = int(pid_file.read_text().splitlines()[0])
        expected = "postgres" if os.geteuid() == 0 else pg_user()
        assert pg.server_user() == expected
        assert pg.data_dir.owner() == expected
        assert not (base / "pwfile").exists()  # initdb read it; it is gone before the server starts
    assert pg.base_dir is None and not base.exists()
    assert not Path(f"/proc/{pid}").exists() or "postgres" not in Path(f"/proc/{pid}/cmdline").read_text()
    pg.stop()  # twice is harmless


def pg_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


@pytest.mark.postgres
def test_missing_binaries_fail_in_one_line_and_leave_nothing(tmp_path: Path) -> None:
    pg = PostgresCluster(bin_dir=tmp_path)
    before = set(pg.parent_dir.glob("koji-mcp-pg-*"))
    with pytest.raises(PostgresUnavailable) as info:
        pg.start()
    assert str(info.value).startswith(f"PostgreSQL server binaries not found: no initdb or pg_ctl in {tmp_path}")
    assert "\n" not in str(info.value)
    assert pg.base_dir is None and set(pg.parent_dir.glob("koji-mcp-pg-*")) == before


def test_ledger_backend_gives_each_backend_its_place(ledger_backend: LedgerBackend) -> None:
    if ledger_backend.name == "sqlite":
        assert ledger_backend.database_url is None
        return
    assert ledger_backend.name == "postgres" and ledger_backend.database_url
    with psycopg.connect(ledger_backend.database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0].startswith("t_")
    assert urlsplit(ledger_backend.database_url).password not in repr(ledger_backend)


def run_pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KOJI")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_without_postgres_the_tests_are_not_collected_and_the_summary_says_so() -> None:
    proc = run_pytest("tests/test_pgcluster.py", "--collect-only")
    assert proc.returncode == 0, proc.stdout[-2000:]
    collected = [line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line]
    assert "test_ledger_backend_gives_each_backend_its_place[sqlite]" in collected
    assert not [name for name in collected if "postgres]" in name or name.startswith("test_cluster_starts")]
    assert "(5 deselected)" in proc.stdout
    assert "PostgreSQL backend not tested here: run `make test-postgres`" in proc.stdout


def test_with_postgres_a_cluster_that_cannot_start_is_an_error_not_a_skip(tmp_path: Path) -> None:
    proc = run_pytest("tests/test_pgcluster.py::test_cluster_starts_fast_and_local", "-m", "postgres",
                      KOJI_MCP_TEST_POSTGRES="1", KOJI_MCP_TEST_PG_BIN=str(tmp_path))
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert "PostgreSQL: PostgreSQL server binaries not found" in proc.stdout
    assert "Traceback" not in proc.stdout and "During handling" not in proc.stdout
