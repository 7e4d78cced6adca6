"""HTTP transports with auth on: who gets in, who sees what, and the Host/Origin rules."""

from __future__ import annotations

import sqlite3
import subprocess

import httpx
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env
from tests.e2e.test_http import free_port, wait_for_port

pytestmark = pytest.mark.anyio
ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


@pytest.fixture
def authed(request, sandbox, tmp_path):
    transport = getattr(request, "param", "streamable-http")
    port = free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path),
                         KOJI_MCP_AUTH_TOKEN=f"alice={ALICE}")
    proc = subprocess.Popen(
        [*koji_mcp_command(), "serve", "--transport", transport, "--port", str(port), "--auth-token", f"bob={BOB}",
         "--allowed-host", "mcp.example.com", "--allowed-origin", "https://chatgpt.com"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)
        yield port, tmp_path
    finally:
        proc.terminate()
        proc.wait(10)


def as_client(port: int, token: str) -> Client:
    hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=hc), mode="legacy")


STATIC_MISSING = ('Bearer error="invalid_token", '
                  'error_description="Authentication required: send Authorization: Bearer <token>"')
STATIC_INVALID = ('Bearer error="invalid_token", error_description="Invalid token: send Authorization: Bearer <token> '
                  'with one of this server\'s client tokens"')


def test_static_tokens_get_honest_401s_and_no_oauth_metadata(authed) -> None:
    """Static tokens alone: the 401 says which header to send, and nothing names an authorization server."""
    port, _ = authed
    url = f"http://127.0.0.1:{port}/mcp"
    cases = [({}, STATIC_MISSING), ({"Authorization": "Bearer wrong-token-0123456789"}, STATIC_INVALID),
             ({"Authorization": f"Basic {ALICE}"}, STATIC_MISSING)]
    for headers, challenge in cases:
        r = httpx.post(url, json=PING, headers={**HEADERS, **headers})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == challenge
        assert r.json() == {"error": "invalid_token", "error_description": challenge.split('error_description="')[1][:-1]}
        assert int(r.headers["content-length"]) == len(r.content)
    for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource",
                 "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        assert httpx.get(f"http://127.0.0.1:{port}{path}").status_code == 404, path
    assert httpx.post(url, json=PING, headers={**HEADERS, "Authorization": f"Bearer {ALICE}"}).status_code == 200
    health = httpx.get(f"http://127.0.0.1:{port}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_host_and_origin_allow_lists(authed) -> None:
    port, _ = authed
    url = f"http://127.0.0.1:{port}/mcp"
    auth = {**HEADERS, "Authorization": f"Bearer {ALICE}"}
    assert httpx.post(url, json=PING, headers={**auth, "Host": "evil.example"}).status_code == 421
    assert httpx.post(url, json=PING, headers={**auth, "Host": "mcp.example.com"}).status_code == 200
    assert httpx.post(url, json=PING, headers={**auth, "Origin": "https://evil.example"}).status_code == 403
    assert httpx.post(url, json=PING, headers={**auth, "Origin": "https://chatgpt.com"}).status_code == 200


def test_oversized_request_bodies_are_refused(authed) -> None:
    port, _ = authed
    big = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * (3 * 1024 * 1024)}}
    r = httpx.post(f"http://127.0.0.1:{port}/mcp", json=big, headers={**HEADERS, "Authorization": f"Bearer {ALICE}"})
    assert r.status_code == 413


async def test_clients_cannot_see_each_others_interviews(authed, sandbox) -> None:
    port, state = authed
    async with as_client(port, ALICE) as alice:
        started = await alice.call_tool("start_interview", {"respondent": {"external_id": "a-1"}})
        iid = started.structured_content["interview_id"]
        mine = await alice.call_tool("list_interviews", {})
    async with as_client(port, BOB) as bob:
        theirs = await bob.call_tool("list_interviews", {})
        send = await bob.call_tool("send_interview_message", {"interview_id": iid, "content": "hijack"})
        complete = await bob.call_tool("complete_interview", {"interview_id": iid})
        read = await bob.call_tool("get_interview", {"interview_id": iid})
        batch = await bob.call_tool("start_interviews", {"respondents": [{"external_id": "a-1"}], "dry_run": True})
    assert [i["interview_id"] for i in mine.structured_content["interviews"]] == [iid]
    assert theirs.structured_content["interviews"] == []
    for result in (send, complete):
        assert result.is_error and result.content[0].text.startswith(f"Unknown interview_id '{iid}'")
    assert read.is_error and "HTTP 404 not_found" in read.content[0].text
    assert batch.structured_content["outcomes"][0]["outcome"] == "would_start"  # bob's ledger is his own
    # Koji only ever sees the server's key, never a client's token
    assert {r["headers"]["authorization"] for r in sandbox.requests()} == {f"Bearer {DEMO_KEY}"}
    db = sqlite3.connect(state / "ledger.sqlite3")
    assert db.execute("SELECT owner FROM interviews").fetchall() == [("alice",)]


@pytest.mark.parametrize("authed", ["sse"], indirect=True)
async def test_sse_requires_the_token_too(authed) -> None:
    port, _ = authed
    assert httpx.get(f"http://127.0.0.1:{port}/sse", headers={"Accept": "text/event-stream"}).status_code == 401
    async with sse_client(f"http://127.0.0.1:{port}/sse", headers={"Authorization": f"Bearer {BOB}"}) as (r, w):
        async with ClientSession(r, w) as session:
            await session.initialize()
            result = await session.call_tool("list_interviews", {})
    assert not result.is_error


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--transport", "streamable-http", "--host", "0.0.0.0"], {},
         "koji-mcp: refusing to serve on 0.0.0.0 without auth"),
        (["--transport", "sse", "--host", "10.1.2.3"], {}, "koji-mcp: refusing to serve on 10.1.2.3 without auth"),
        (["--transport", "streamable-http", "--auth-token", "short"], {},
         "koji-mcp: auth token for client 'client' is too short"),
        (["--auth-token", "a" * 20], {}, "koji-mcp: --auth-token applies to the HTTP transports"),
        (["--transport", "streamable-http", "--allowed-host", "mcp.example.com"], {},
         "koji-mcp: refusing --allowed-host without auth"),
        (["--transport", "streamable-http", "--auth-token", f"x={ALICE}", "--auth-token", f"x={BOB}"], {},
         "koji-mcp: auth tokens: each client name must be unique"),
    ],
)
def test_unsafe_exposure_is_refused(args, env, message, tmp_path) -> None:
    proc = subprocess.run([*koji_mcp_command(), "serve", "--sandbox", *args], capture_output=True, text=True,
                          env=subprocess_env(KOJI_MCP_STATE_DIR=str(tmp_path), **env), timeout=30,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message) and len(proc.stderr.strip().splitlines()) == 1
