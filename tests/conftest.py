"""Shared fixtures: a real sandbox over HTTP, settings pointing at it, and real MCP clients."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from koji_mcp.config import Settings
from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer
from koji_mcp.server.app import build_server
from tests.pgcluster import PostgresCluster, PostgresUnavailable

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One real sandbox for the session; `sandbox` resets it before each test."""
    with SandboxServer(SandboxConfig(analysis_delay=0.2, rate_limit=6000)) as server:
        yield server


class SandboxHandle:
    """Test-side view of the sandbox: its URL and its control endpoints."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.base_url = server.base_url
        self.http = httpx.Client(base_url=server.base_url, timeout=10)

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def requests(self, path_prefix: str = "/api") -> list[dict[str, Any]]:
        entries = self.http.get("/_sandbox/requests").json()["requests"]
        return [e for e in entries if e["path"].startswith(path_prefix)]

    def fault(self, **fault: Any) -> None:
        self.http.post("/_sandbox/faults", json=fault).raise_for_status()

    def interviews(self) -> list[dict[str, Any]]:
        data = self.http.get("/_sandbox/interviews").json()
        return data["interviews"] if isinstance(data, dict) else data


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxHandle]:
    handle = SandboxHandle(sandbox_server)
    handle.reset()
    yield handle
    handle.http.close()


def make_settings(base_url: str, api_key: str = DEMO_KEY, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"api_key": api_key, "base_url": base_url, "state_dir": ":memory:"}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(sandbox: SandboxHandle, ledger_backend: LedgerBackend) -> Settings:
    """A server's settings on the sandbox, its ledger on each backend (PostgreSQL under `make test-postgres`)."""
    return make_settings(sandbox.base_url, state_dir=ledger_backend.state_dir, database_url=ledger_backend.database_url)


@pytest.fixture(params=["legacy", "auto"])
async def client(request: pytest.FixtureRequest, settings: Settings) -> AsyncIterator[Client]:
    """The SDK's own client, in memory, in both handshake modes hosts use."""
    async with Client(build_server(settings), mode=request.param) as c:
        yield c


@pytest.fixture
async def legacy_client(settings: Settings) -> AsyncIterator[Client]:
    async with Client(build_server(settings), mode="legacy") as c:
        yield c


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOJI")}
    env["PYTHONPATH"] = str(SRC)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def koji_mcp_command() -> list[str]:
    """The installed console script when present, else the module (same entry point)."""
    script = Path(sys.executable).with_name("koji-mcp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "koji_mcp"]


def seed(ledger: Any, interview_id: str, session_token: str, owner: str = "local", **who: Any) -> None:
    """A started interview in the ledger, written as start_once writes one: reserve, then confirm."""
    seq = ledger.reserve(owner=owner, **who)
    ledger.confirm(seq, interview_id=interview_id, session_token=session_token, initial_message=None)


# -- PostgreSQL ------------------------------------------------------------------------------------------
# `make test-postgres` sets KOJI_MCP_TEST_POSTGRES=1 and runs `-m postgres`: a throwaway cluster
# (tests/pgcluster.py) for the session, a fresh database per test. Without the variable, tests that need
# PostgreSQL are not collected (ledger_backend has no postgres param, postgres-marked tests are deselected)
# and the summary says so; with it, a cluster that cannot start is an error, never a skip.
POSTGRES_ENV = "KOJI_MCP_TEST_POSTGRES"
POSTGRES_FIXTURES = {"postgres_cluster", "postgres_url"}


def postgres_enabled() -> bool:
    return os.environ.get(POSTGRES_ENV) == "1"


_started_clusters: list[PostgresCluster] = []  # for the terminal summary (start and CREATE DATABASE times)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:  # a test that asks for the cluster needs PostgreSQL whether or not it says so
        if POSTGRES_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
    if postgres_enabled():
        return
    deselected = [item for item in items if item.get_closest_marker("postgres")]
    if deselected:
        items[:] = [item for item in items if not item.get_closest_marker("postgres")]
        config.hook.pytest_deselected(items=deselected)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not postgres_enabled():
        terminalreporter.write_line("PostgreSQL backend not tested here: run `make test-postgres`", yellow=True)
        return
    for pg in _started_clusters:
        mean = pg.create_seconds / pg.databases_created * 1000 if pg.databases_created else 0.0
        terminalreporter.write_line(f"PostgreSQL {pg.version} cluster: started in {pg.start_seconds:.2f} s, "
                                    f"{pg.databases_created} databases created ({mean:.0f} ms each on average)")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session; `.url` (superuser, with password), `.new_database()`."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        failure = None
    except PostgresUnavailable as exc:
        failure = str(exc)
    if failure:  # outside the except: one line, no chained traceback
        pytest.fail(f"PostgreSQL: {failure}", pytrace=False)
    _started_clusters.append(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL (with password) of a fresh, empty database for this test; dropped afterwards."""
    url = postgres_cluster.new_database()
    yield url
    postgres_cluster.drop_database(url.rsplit("/", 1)[1])


@dataclass(frozen=True)
class LedgerBackend:
    """Where a test's ledger lives: SQLite in `state_dir`, or PostgreSQL at `database_url` (None for SQLite)."""

    name: str  # "sqlite" | "postgres"
    state_dir: str
    database_url: str | None

    def __repr__(self) -> str:  # the URL carries the password
        return f"LedgerBackend({self.name})"


LEDGER_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)] if postgres_enabled() \
    else ["sqlite"]


@pytest.fixture(params=LEDGER_BACKENDS)
def ledger_backend(request: pytest.FixtureRequest, tmp_path: Path) -> LedgerBackend:
    """Run a test once per ledger backend: [sqlite] always, [postgres] under `make test-postgres`."""
    state_dir = str(tmp_path / "state")
    if request.param == "postgres":
        return LedgerBackend("postgres", state_dir, request.getfixturevalue("postgres_url"))
    return LedgerBackend("sqlite", state_dir, None)
