"""Every tool against every upstream fault: a clear isError result, the server keeps serving, and
requests that may have reached Koji are sent exactly once (only connect failures and 429s retry).

Faults come from the sandbox's fault switches where it can produce them, and from a wrapping httpx
transport for the two it cannot (a reset after Koji processed the request, a refused connection).
"""

from __future__ import annotations

import time

import httpx
import pytest
from mcp import Client

from koji_mcp.server.app import build_server
from koji_mcp.interviews.services import open_services
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

TOOLS = ["start_interview", "start_interviews", "send_interview_message", "complete_interview", "get_interview"]


class FaultTransport(httpx.AsyncBaseTransport):
    """Forwards to the real sandbox; can refuse connections or reset after Koji has processed."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.mode: str | None = None
        self.path: str | None = None
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hit = self.mode is not None and request.url.path == self.path
        if hit:
            self.attempts += 1
        if hit and self.mode == "refuse":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if hit and self.mode == "reset":
            await response.aread()
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        return response


def sandbox_fault(**fault):
    return ("sandbox", fault)


FAULTS = {
    "500": sandbox_fault(status=500, json={"error": "internal_error", "message": "boom"}),
    "502 html": sandbox_fault(status=502, body="<html><h1>502 Bad Gateway</h1></html>", content_type="text/html"),
    "503 retry-after": sandbox_fault(status=503, body="busy", content_type="text/plain", headers={"Retry-After": "1"}),
    "read timeout": sandbox_fault(status=200, delay=1.0, after_processing=True),
    "reset": ("transport", "reset"),
    "connect refused": ("transport", "refuse"),
    "malformed json": sandbox_fault(status=200, body='{"interview_id": "x", ', content_type="application/json"),
    "html page": sandbox_fault(status=200, body="<html>Sign in to the Wi-Fi</html>", content_type="text/html"),
    "10 MB body": sandbox_fault(status=200, body="x" * (10 * 1024 * 1024), content_type="application/json"),
    "201 without interview_id": sandbox_fault(status=201, json={"session_token": "st_live_x", "initial_message": "hi"}),
    "429 retry-after": sandbox_fault(status=429, headers={"Retry-After": "30"},
                                     json={"error": "rate_limited", "message": "Rate limit exceeded."}),
    "429 reset only": ("sandbox-429-reset", None),
}

EXPECTED_TEXT = {
    "500": "Koji returned HTTP 500 (internal_error: boom)",
    "502 html": "Koji returned HTTP 502 (text/html:",
    "503 retry-after": "Koji returned HTTP 503 (text/plain: 'busy')",
    "read timeout": "Koji timed out: Koji did not answer within 0.3 s after the request was sent",
    "reset": "the connection to Koji failed mid-request (ReadError)",
    "connect refused": "Could not reach Koji: could not connect to Koji at",
    "10 MB body": "was larger than 1,000,000 bytes and was not read",
    "429 retry-after": "Koji rate limit reached (HTTP 429 rate_limited): Rate limit exceeded.",
    "429 reset only": "Koji rate limit reached (HTTP 429 rate_limited): Rate limit exceeded.",
}
MAY_HAVE_REACHED = {"500", "502 html", "503 retry-after", "read timeout", "reset", "malformed json", "html page",
                    "10 MB body", "201 without interview_id"}


def target(tool: str, interview_id: str) -> tuple[str, str]:
    return {
        "start_interview": ("POST", "/api/v1/interviews/start"),
        "start_interviews": ("POST", "/api/v1/interviews/start"),
        "send_interview_message": ("POST", f"/api/v1/interviews/{interview_id}/message"),
        "complete_interview": ("POST", "/api/interview/complete"),
        "get_interview": ("GET", f"/api/v1/interviews/{interview_id}"),
    }[tool]


def arguments(tool: str, interview_id: str) -> dict:
    return {
        "start_interview": {"respondent": {"external_id": "fault-1"}},
        "start_interviews": {"respondents": [{"external_id": "fault-1"}]},
        "send_interview_message": {"interview_id": interview_id, "content": "hello"},
        "complete_interview": {"interview_id": interview_id},
        "get_interview": {"interview_id": interview_id},
    }[tool]


def expected_attempts(tool: str, fault: str) -> int:
    if fault == "connect refused":
        return 3  # never sent: retried twice
    if tool == "start_interviews" and fault.startswith("429"):
        return 3  # a 429 was not processed: the batch waits as told and retries, at most twice
    repeatable = tool in {"get_interview", "complete_interview"}  # GET, and Koji's idempotent complete
    if repeatable and fault in {"500", "502 html", "503 retry-after", "reset"}:
        return 3
    return 1


# A well-formed JSON object is a valid answer for these: the fault is not a fault for them.
HARMLESS = {("complete_interview", "201 without interview_id"), ("get_interview", "201 without interview_id")}


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("tool", TOOLS)
async def test_fault(tool: str, fault: str, sandbox, tmp_path) -> None:
    transport = FaultTransport()
    settings = make_settings(sandbox.base_url, state_dir=str(tmp_path), timeout=0.3)
    async with open_services(settings, transport=transport) as services:
        async with Client(build_server(settings, services), mode="legacy") as c:
            ready = await c.call_tool("start_interview", {"respondent": {"external_id": "setup"}})
            interview_id = ready.structured_content["interview_id"]
            method, path = target(tool, interview_id)
            kind, spec = FAULTS[fault]
            wait = 1 if tool == "start_interviews" else 30  # a batch waits out the limit; a single call won't
            if kind == "sandbox":
                if fault == "429 retry-after":
                    spec = {**spec, "headers": {"Retry-After": str(wait)}}
                sandbox.fault(path=path, method=method, times=10, **spec)
            elif kind == "sandbox-429-reset":
                sandbox.fault(path=path, method=method, status=429, times=10,
                              headers={"X-RateLimit-Limit": "6000", "X-RateLimit-Remaining": "0",
                                       "X-RateLimit-Reset": str(int(time.time()) + wait)},
                              json={"error": "rate_limited", "message": "Rate limit exceeded."})
            else:
                transport.mode, transport.path = spec, path
            sandbox.http.delete("/_sandbox/requests")

            result = await c.call_tool(tool, arguments(tool, interview_id))

            transport.mode = None
            sandbox.http.delete("/_sandbox/faults")
            still_serving = await c.call_tool("list_interviews", {})
    assert not still_serving.is_error

    sent = [r for r in sandbox.requests() if r["path"] == path and r["method"] == method]
    attempts = transport.attempts if kind == "transport" else len(sent)
    assert attempts == expected_attempts(tool, fault), (tool, fault, attempts)

    if tool == "start_interviews":
        [outcome] = result.structured_content["outcomes"]
        wanted = "unknown" if fault in MAY_HAVE_REACHED else "failed"
        assert outcome["outcome"] == wanted, outcome
        return
    text = result.content[0].text
    if (tool, fault) in HARMLESS:
        assert not result.is_error, text
        return
    assert result.is_error and result.structured_content is None, text
    assert "Traceback" not in text and "Error executing tool" not in text
    if fault in EXPECTED_TEXT:
        assert EXPECTED_TEXT[fault] in text, text
    if fault in MAY_HAVE_REACHED and tool in {"start_interview", "send_interview_message"}:
        assert "Outcome unknown" in text, text
    if fault in {"connect refused", "429 retry-after", "429 reset only"}:
        assert "Nothing was sent to Koji." in text or "Koji did not act on the request." in text, text
