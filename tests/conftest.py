"""Shared fixtures: a real sandbox over HTTP, settings pointing at it, and real MCP clients."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from koji_mcp.config import Settings
from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer
from koji_mcp.server.app import build_server

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
def settings(sandbox: SandboxHandle, tmp_path: Path) -> Settings:
    return make_settings(sandbox.base_url, state_dir=str(tmp_path / "state"))


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
