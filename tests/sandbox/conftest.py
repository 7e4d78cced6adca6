"""Fixtures for sandbox tests: real uvicorn servers on free ports, real httpx clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(name="bearer")
def bearer_fixture() -> Callable[[str], dict[str, str]]:
    """``bearer(key)`` → Authorization header dict (fixture: tests cannot import conftest)."""
    return bearer


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[SandboxServer]:
    """One shared default sandbox (analysis_delay shortened); reset before each test."""
    with SandboxServer(SandboxConfig(analysis_delay=0.2)) as server:
        yield server


@pytest.fixture
def http(shared_sandbox: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_sandbox.base_url, timeout=10) as c:
        assert c.post("/_sandbox/reset").status_code == 200
        yield c


@pytest.fixture
def make_server() -> Iterator[Callable[..., SandboxServer]]:
    """Start extra sandboxes with custom config; all are stopped at teardown."""
    servers: list[SandboxServer] = []

    def make(**kwargs: Any) -> SandboxServer:
        server = SandboxServer(SandboxConfig(**kwargs)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def start(http: httpx.Client) -> Callable[..., dict[str, Any]]:
    """Start an interview with DEMO_KEY (or ``key``) and return the 201 body."""

    def do(body: dict[str, Any] | None = None, key: str = DEMO_KEY, via: httpx.Client | None = None) -> dict[str, Any]:
        r = (via or http).post("/api/v1/interviews/start", json=body or {}, headers=bearer(key))
        assert r.status_code == 201, r.text
        return r.json()

    return do


# Answers to the default brief, in order, with what analysis should extract.
_ANSWERS: list[tuple[str, Any]] = [
    ("Setup was smooth, but the onboarding emails felt noisy and the onboarding checklist was long.", None),
    ("I'd say 8 out of 10", 8),
    ("Mostly the video tutorials", "Video tutorials"),
    ("Alerts and dashboards, sometimes the mobile app", ["Dashboards", "Alerts", "Mobile app"]),
    ("Lower price first, then faster performance, then more integrations",
     ["Lower price", "Faster performance", "More integrations"]),
    ("Yes, definitely", True),
]


@pytest.fixture
def answers() -> list[tuple[str, Any]]:
    return list(_ANSWERS)


@pytest.fixture(name="api_error")
def api_error_fixture() -> Callable[[httpx.Response, int, str], str]:
    return api_error


def api_error(response: httpx.Response, status: int, code: str) -> str:
    """Assert a Koji error envelope and return its message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body["message"]
