"""Every documented failure of start_interview becomes a clear isError result, sent exactly once."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from mcp import Client

from koji_mcp.sandbox import (
    DELETED_PROJECT_KEY,
    DRAFT_PROJECT_KEY,
    NO_PERMISSION_KEY,
    READ_ONLY_KEY,
    REVOKED_KEY,
    SandboxConfig,
    SandboxServer,
)
from koji_mcp.interviews.ledger import StorageError
from koji_mcp.interviews.services import open_services
from koji_mcp.server.app import build_server
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio
START = "/api/v1/interviews/start"


async def call_start(settings, arguments=None) -> tuple[bool, str, object]:
    async with Client(build_server(settings), mode="legacy") as c:
        result = await c.call_tool("start_interview", arguments or {})
    return result.is_error, result.content[0].text, result.structured_content


@pytest.mark.parametrize(
    ("key", "arguments", "expected"),
    [
        (REVOKED_KEY, {}, "Koji rejected start_interview (HTTP 401 unauthorized): The provided API key is invalid or has been revoked.\n"
         "Koji did not act on the request. Check KOJI_API_KEY: it is missing, mistyped or revoked."),
        (NO_PERMISSION_KEY, {}, "Koji rejected start_interview (HTTP 403 forbidden): Your API key does not have the required permission for this action.\n"
         "Koji did not act on the request. The API key lacks the permission 'interview:start'"),
        (READ_ONLY_KEY, {}, "(HTTP 403 forbidden)"),
        (DELETED_PROJECT_KEY, {}, "Koji rejected start_interview (HTTP 404 not_found): The specified project does not exist.\n"
         "Koji did not act on the request. The API key's project does not exist"),
        (DRAFT_PROJECT_KEY, {}, "Koji rejected start_interview (HTTP 422 unprocessable): The project has no published research brief.\n"
         "Koji did not act on the request. Publish the project's research brief in Koji"),
        (None, {"locale": "xx"}, "Koji rejected start_interview (HTTP 400 invalid_request): Unsupported locale 'xx'."),
    ],
)
async def test_documented_errors(sandbox, key, arguments, expected) -> None:
    settings = make_settings(sandbox.base_url, **({"api_key": key} if key else {}))
    is_error, text, structured = await call_start(settings, arguments)
    assert is_error and structured is None
    assert expected in text, text
    assert len(sandbox.requests()) == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 409, "json": {"error": "conflict", "message": "An interview is already running."}},
         "Koji rejected start_interview (HTTP 409 conflict): An interview is already running.\nKoji did not act on the request. "
         "Koji reports a conflict"),
        ({"status": 402, "json": {"error": "payment_required", "message": "credit limit reached"}},
         "The Koji account is out of credits"),
        ({"status": 500, "json": {"error": "internal_error", "message": "boom"}},
         "Koji is unavailable or answered badly: Koji returned HTTP 500 (internal_error: boom)\nOutcome unknown: the interview may have been started"),
        ({"status": 502, "body": "<html><body>Bad Gateway</body></html>", "content_type": "text/html"},
         "Koji is unavailable or answered badly: Koji returned HTTP 502 (text/html: '<html><body>Bad Gateway</body></html>')\nOutcome unknown"),
        ({"status": 503, "body": "down", "content_type": "text/plain", "headers": {"Retry-After": "1"}},
         "Koji returned HTTP 503 (text/plain: 'down')\nOutcome unknown"),
        ({"status": 201, "body": "not json", "content_type": "text/plain"},
         "Koji answered 201 but the body has no usable interview_id/session_token\nOutcome unknown"),
        ({"status": 201, "json": {"session_token": "st_live_x", "initial_message": "hi"}},
         "Koji answered 201 but the body has no usable interview_id/session_token"),
        ({"status": 418, "body": "teapot", "content_type": "text/plain"},
         "Koji rejected start_interview (HTTP 418): Koji returned HTTP 418 without its JSON error body (text/plain: 'teapot')\n"
         "Koji did not act on the request. Is KOJI_BASE_URL right?"),
    ],
)
async def test_faults_are_reported_and_never_retried(sandbox, settings, fault, expected) -> None:
    sandbox.fault(path=START, **fault)
    is_error, text, structured = await call_start(settings)
    assert is_error and structured is None
    assert expected in text, text
    assert len(sandbox.requests()) == 1, "a POST that may have reached Koji must never be retried"


async def test_unknown_outcome_is_recorded_in_the_ledger(sandbox, settings) -> None:
    sandbox.fault(path=START, status=502, after_processing=True, body="gateway", content_type="text/plain")
    async with Client(build_server(settings), mode="legacy") as c:
        result = await c.call_tool("start_interview", {"respondent": {"external_id": "u-7"}})
        listed = await c.call_tool("list_interviews", {"status": "unknown"})
    assert result.is_error
    assert "Recorded in the ledger as unknown-" in result.content[0].text
    assert len(sandbox.interviews()) == 1  # Koji did start it: that's why we must not retry
    # list_interviews says why the start is 'unknown', in text and structured content
    note = "Koji returned HTTP 502 (text/plain: 'gateway')"
    [item] = listed.structured_content["interviews"]
    assert item["status"] == "unknown" and item["note"] == note
    assert listed.content[0].text.splitlines()[1].endswith(f" - {note}")

    from koji_mcp.interviews.ledger import Ledger

    [entry] = Ledger.open(settings.state_dir, sandbox.base_url, database_url=settings.ledger_database_url).find_by_external_id("u-7")
    assert entry.status == "unknown" and entry.interview_id.startswith("unknown-")


async def test_read_timeout_after_sending_is_outcome_unknown(sandbox) -> None:
    settings = make_settings(sandbox.base_url, timeout=0.3)
    sandbox.fault(path=START, status=201, delay=1.0, after_processing=True)
    is_error, text, _ = await call_start(settings)
    assert is_error
    assert text.startswith("Koji timed out: Koji did not answer within 0.3 s after the request was sent\nOutcome unknown")
    assert len(sandbox.requests()) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_connection_refused_is_retried_then_reported_as_not_sent() -> None:
    settings = make_settings(f"http://127.0.0.1:{_closed_port()}")
    is_error, text, _ = await call_start(settings)
    assert is_error
    assert text.startswith("Could not reach Koji: could not connect to Koji at http://127.0.0.1:")
    assert "Nothing was sent to Koji. Check the network and KOJI_BASE_URL, then call start_interview again." in text


async def test_connect_failures_are_retried_within_bounds() -> None:
    """MockTransport: the sandbox cannot refuse a connection and then accept the retry."""
    from koji_mcp.koji.client import KojiClient
    from koji_mcp.koji.models import StartRequest

    attempts = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(201, json={"interview_id": "i1", "session_token": "st_live_t", "initial_message": "hi"})

    async def no_sleep(_: float) -> None:
        return None

    client = KojiClient(make_settings("http://koji.test"), transport=httpx.MockTransport(handler), sleep=no_sleep)
    started = await client.start_interview(StartRequest())
    await client.aclose()
    assert started.interview_id == "i1" and len(attempts) == 3


@pytest.fixture
def limited_sandbox(request) -> AsyncIterator[SandboxServer]:
    window = request.param
    with SandboxServer(SandboxConfig(rate_limit=1, window_seconds=window)) as server:
        yield server


def _requests(server: SandboxServer) -> list[dict]:
    return [r for r in httpx.get(f"{server.base_url}/_sandbox/requests").json()["requests"] if r["path"] == START]


@pytest.mark.parametrize("limited_sandbox", [120.0], indirect=True)
async def test_spent_rate_limit_fails_at_once_without_sending(limited_sandbox) -> None:
    """Koji said Remaining 0 until a reset 2 minutes away: the pacer refuses without a pointless 429."""
    settings = make_settings(limited_sandbox.base_url)
    async with Client(build_server(settings), mode="legacy") as c:
        assert not (await c.call_tool("start_interview", {})).is_error
        result = await c.call_tool("start_interview", {})
    text = result.content[0].text
    assert result.is_error
    assert text.startswith("Koji rate limit reached (HTTP 429 rate_limited): Koji's rate limit for this API key "
                           "(1 requests per minute) is used up; the request was not sent.\nNothing was sent to Koji. Retry in 1")
    assert [r["status"] for r in _requests(limited_sandbox)] == [201]


@pytest.mark.parametrize("limited_sandbox", [120.0], indirect=True)
async def test_429_from_koji_with_a_long_wait_returns_at_once_saying_when(limited_sandbox) -> None:
    """Another client of the same key used the window up: Koji's own 429 is reported, not slept on."""
    settings = make_settings(limited_sandbox.base_url)
    assert not (await call_start(settings))[0]
    is_error, text, _ = await call_start(settings)  # a new server: its pacer has not seen the first call
    assert is_error
    assert text.startswith("Koji rate limit reached (HTTP 429 rate_limited): Rate limit exceeded. "
                           "Please retry after the window resets.\nKoji did not act on the request. Retry in 1")
    assert "UTC)." in text
    assert [r["status"] for r in _requests(limited_sandbox)] == [201, 429]


@pytest.mark.parametrize("kind", ["retry_after", "ratelimit_reset"])
async def test_429_with_a_short_wait_is_retried_after_that_wait(sandbox, settings, kind) -> None:
    """A 429 was not processed, so retrying it after Koji's wait is safe and costs nothing."""
    import time

    headers = ({"Retry-After": "1"} if kind == "retry_after" else
               {"X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 2)})
    sandbox.fault(path=START, status=429, headers=headers,
                  json={"error": "rate_limited", "message": "Rate limit exceeded. Please retry after the window resets."})
    began = time.monotonic()
    is_error, text, _ = await call_start(settings)
    assert not is_error, text
    assert time.monotonic() - began >= 0.9
    assert [r["status"] for r in sandbox.requests()] == [429, 201]


NOTHING_SENT = ("Nothing was sent to Koji. Check the state directory (KOJI_MCP_STATE_DIR: disk space, permissions), "
                "then call {tool} again.")
NOTHING_SENT_PG = ("Nothing was sent to Koji. Check the ledger database (KOJI_MCP_DATABASE_URL: is PostgreSQL up, "
                   "reachable and accepting connections?), then call {tool} again.")


@pytest.mark.parametrize(("tool", "arguments", "verb"), [
    ("start_interview", {}, "written"),  # the reservation before sending
    ("start_interview", {"respondent": {"external_id": "u1"}}, "read"),  # the look-up of earlier invitations
    ("start_interviews", {"respondents": [{"external_id": "u1"}, {"external_id": "u2"}]}, "read"),  # the plan
])
async def test_a_ledger_that_cannot_be_used_says_nothing_was_sent(sandbox, settings, tool, arguments, verb) -> None:
    """Issue 11 item 11: a storage failure before sending is 'nothing sent', never 'outcome unknown'."""
    async with open_services(settings) as services:
        services.ledger.close()  # a real server whose ledger connection is gone
        async with Client(build_server(settings, services), mode="legacy") as c:
            result = await c.call_tool(tool, arguments)
    assert result.is_error and result.structured_content is None
    if settings.database_url:  # where, without user or password
        database = settings.ledger_database_url.rsplit("@", 1)[1]
        assert result.content[0].text == (
            f"The ledger database at postgresql://…@{database} could not be {verb} (the pool 'koji-mcp-ledger' is "
            "already closed).\n" + NOTHING_SENT_PG.format(tool=tool)
        )
    else:
        assert result.content[0].text == (
            f"The local ledger could not be {verb} (Cannot operate on a closed database.).\n"
            + NOTHING_SENT.format(tool=tool)
        )
    assert sandbox.requests() == []


async def test_a_batch_stops_when_the_ledger_fails_after_planning(sandbox, settings, monkeypatch) -> None:
    """The plan could read the ledger but the first reservation cannot be written: no row is sent."""
    async with open_services(settings) as services:
        def refuse(**_: object) -> int:
            raise StorageError("the local ledger could not be written (disk I/O error)")

        monkeypatch.setattr(services.ledger, "reserve", refuse)
        async with Client(build_server(settings, services), mode="legacy") as c:
            result = await c.call_tool("start_interviews", {"respondents": [{"external_id": f"u{i}"} for i in range(5)]})
    assert not result.is_error
    counts = result.structured_content["counts"]
    assert counts["started"] == 0 and counts["failed"] >= 1 and counts["failed"] + counts["not_reached"] == 5
    assert result.structured_content["outcomes"][0]["error_code"] == "StorageError"
    assert sandbox.requests() == []


async def test_an_undecodable_body_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                              content=b"definitely not gzip")

    settings = make_settings("http://koji.test")
    async with open_services(settings, transport=httpx.MockTransport(handler)) as services:
        async with Client(build_server(settings, services), mode="legacy") as c:
            r = await c.call_tool("start_interview", {})
    assert r.is_error
    assert r.content[0].text.startswith("Koji is unavailable or answered badly: Koji's answer could not be decoded")
    assert "Outcome unknown" in r.content[0].text
