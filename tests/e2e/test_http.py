"""Streamable HTTP and SSE over real sockets: `koji-mcp serve` as a subprocess on a free port."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from mcp import Client, ClientSession
from mcp.client.sse import sse_client

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@pytest.fixture
def http_server(request, sandbox, tmp_path) -> Iterator[tuple[int, object]]:
    transport = request.param
    port = free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path))
    proc = subprocess.Popen(
        [*koji_mcp_command(), "serve", "--transport", transport, "--port", str(port)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for_port(port, proc)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.parametrize("http_server", ["streamable-http"], indirect=True)
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_streamable_http(http_server, sandbox, mode) -> None:
    port, _ = http_server
    async with Client(f"http://127.0.0.1:{port}/mcp", mode=mode) as c:
        tools = await c.list_tools()
        assert "start_interview" in [t.name for t in tools.tools]
        result = await c.call_tool("start_interview", {"respondent": {"external_id": "http-1"}})
    assert not result.is_error, result.content[0].text
    [koji] = sandbox.interviews()
    assert result.structured_content["interview_id"] == koji["interview_id"]
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("http_server", ["streamable-http"], indirect=True)
def test_bad_host_and_origin_are_refused(http_server) -> None:
    port, _ = http_server
    url = f"http://127.0.0.1:{port}/mcp"
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    assert httpx.post(url, json=body, headers={**headers, "Host": "evil.example"}).status_code == 421
    assert httpx.post(url, json=body, headers={**headers, "Origin": "https://evil.example"}).status_code == 403


@pytest.mark.parametrize("http_server", ["sse"], indirect=True)
async def test_sse(http_server, sandbox) -> None:
    port, _ = http_server
    async with sse_client(f"http://127.0.0.1:{port}/sse") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            assert "start_interview" in [t.name for t in tools.tools]
            first = await session.call_tool("start_interview", {"mode": "text"})
            second = await session.call_tool("start_interview", {"mode": "voice"})
    assert not first.is_error and not second.is_error
    assert [r["json"] for r in sandbox.requests()] == [{"mode": "text"}, {"mode": "voice"}]
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz")  # readiness on the SSE transport too
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
