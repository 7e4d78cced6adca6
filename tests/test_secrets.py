"""Canary tests: the API key and the interviews' session tokens never leave the server.

A canary API key (registered with every permission in a dedicated sandbox) and the canary session
tokens that sandbox issues are looked for everywhere a secret could escape: tool results (text and
structuredContent), resource contents, error texts, every log record (message, arguments,
exception text) and the formatted log output at DEBUG for all loggers, stdout and stderr, in
memory and from a real `koji-mcp` stdio subprocess at `--log-level DEBUG`, through the whole
interview flow and through upstream faults (500, 502 text, 429 + Retry-After, 401
invalid_session_token, read timeout, connection refused).

Where the key may be named at all, only its prefix is shown: `pk_live_cana…`.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult

from koji_mcp.sandbox import KeySpec, SandboxConfig, SandboxServer
from koji_mcp.server.app import build_server
from tests.conftest import (
    ROOT,
    SandboxHandle,
    koji_mcp_command,
    make_settings,
    subprocess_env,
)

CANARY_KEY = "pk_live_canary" + "zq8x4w7v2r9t6y1u3i5o0p4l2k"  # Koji's shape: pk_live_ + 32 characters
SHOWN_KEY = "pk_live_cana…"
START = "/api/v1/interviews/start"
MESSAGE = "/api/v1/interviews/{id}/message"
INTERVIEW = "/api/v1/interviews/{id}"
ANSWERS = [
    "Setup was confusing at first but the dashboards were great.",
    "I'd say 7 out of 10.",
    "Video tutorials, definitely.",
    "Dashboards, Alerts and Reports.",
    "Lower price first, then faster performance.",
    "Yes, I already did.",
]
LOGGERS = ("", "koji_mcp", "mcp", "httpx", "httpcore", "anyio", "asyncio", "uvicorn", "uvicorn.access", "uvicorn.error")

assert len(CANARY_KEY) == len("pk_live_") + 32
# the request-state sealing key (KOJI_MCP_REQUEST_STATE_KEYS): shapeless, so only never logging it keeps it out
CANARY_STATE_KEY = "sealing-canary-" + "Zr5Tq8Wm1Xv4Yb7Nc0Kd3Lf6Hg9Jp2"


@pytest.fixture(scope="module")
def canary_server() -> Iterator[SandboxServer]:
    config = SandboxConfig(rate_limit=6000, analysis_delay=0.0,
                           extra_keys={CANARY_KEY: KeySpec(description="canary key for leak tests")})
    with SandboxServer(config) as server:
        yield server


@pytest.fixture
def canary(canary_server: SandboxServer) -> Iterator[SandboxHandle]:
    handle = SandboxHandle(canary_server)
    handle.reset()
    yield handle
    handle.http.close()


def free_closed_port() -> int:
    """A port nothing listens on (bound, then closed), so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- what counts as a leak -------------------------------------------------------------------------

def secrets_of(sandbox: SandboxHandle) -> list[str]:
    """The canary key and every session token the sandbox issued, plus their hidden parts."""
    tokens = [i["session_token"] for i in sandbox.interviews()]
    assert tokens, "the flow should have started interviews"
    hidden = [CANARY_KEY[len(SHOWN_KEY) - 1:]] + [t[len("st_live_") + 4:] for t in tokens]
    return [CANARY_KEY, *tokens, *hidden, CANARY_STATE_KEY, CANARY_STATE_KEY[len("sealing-canary-"):]]


def assert_no_secrets(where: str, text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text, f"{where} leaks {secret[:12]}…: …{_around(text, secret)}…"
    # wherever the key is named, it is named by its prefix only
    for match in re.finditer(r"pk_live_cana\w*", text):
        assert match.group() == "pk_live_cana" and text[match.end():match.end() + 1] == "…", (
            f"{where} shows more of the key than {SHOWN_KEY!r}: {text[max(0, match.start() - 40):match.end() + 40]!r}")
    for match in re.finditer(r"st_live_\w+", text):
        assert len(match.group()) <= len("st_live_") + 4 and text[match.end():match.end() + 1] == "…", (
            f"{where} shows a session token: {text[max(0, match.start() - 40):match.end() + 40]!r}")


def _around(text: str, secret: str) -> str:
    at = text.find(secret)
    return text[max(0, at - 60):at + len(secret) + 20]


def result_text(result: CallToolResult) -> str:
    return result.model_dump_json(by_alias=True)  # every content block, structuredContent, _meta


# -- in memory --------------------------------------------------------------------------------------

class Recorder:
    """Calls tools and keeps everything the client saw."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[tuple[str, str]] = []

    async def call(self, name: str, args: dict[str, Any]) -> CallToolResult:
        result = await self.client.call_tool(name, args)
        self.seen.append((f"{name} result", result_text(result)))
        return result

    async def ok(self, name: str, args: dict[str, Any]) -> CallToolResult:
        result = await self.call(name, args)
        assert not result.is_error, result.content[0].text
        return result

    async def failing(self, name: str, args: dict[str, Any], expect: str) -> CallToolResult:
        result = await self.call(name, args)
        assert result.is_error and expect in result.content[0].text, result.content[0].text
        return result


async def whole_flow(rec: Recorder, sandbox: SandboxHandle) -> None:
    started = await rec.ok("start_interview", {"respondent": {"external_id": "canary-1", "display_name": "Cana"}})
    iid = started.structured_content["interview_id"]
    for answer in ANSWERS:
        await rec.ok("send_interview_message", {"interview_id": iid, "content": answer})
    await rec.ok("complete_interview", {"interview_id": iid, "reason": "natural", "feedback": {"rating": 5}})
    got = await rec.ok("get_interview", {"interview_id": iid, "include_transcript": True})
    assert got.structured_content["transcript"]
    await rec.ok("list_interviews", {})
    batch = await rec.ok("start_interviews", {"respondents": [{"external_id": f"canary-b{i}"} for i in range(3)]})
    assert batch.structured_content["counts"]["started"] == 3
    resource = await rec.client.read_resource(f"koji://interviews/{iid}")
    rec.seen.append(("resource", resource.model_dump_json(by_alias=True)))
    assert json.loads(resource.contents[0].text)["ledger"]["interview_id"] == iid


async def faults(rec: Recorder, sandbox: SandboxHandle) -> None:
    faulty = await rec.ok("start_interview", {"respondent": {"display_name": "Faulty"}})
    live = faulty.structured_content["interview_id"]
    expiring = (await rec.ok("start_interview", {})).structured_content["interview_id"]

    sandbox.fault(method="POST", path=START, status=500, json={"error": "internal_error", "message": "boom"})
    await rec.failing("start_interview", {}, "Outcome unknown")
    sandbox.fault(method="GET", path=INTERVIEW.format(id=live), status=502, content_type="text/html", times=3,
                  body="<html><h1>502 Bad Gateway</h1></html>")  # GETs are retried twice
    await rec.failing("get_interview", {"interview_id": live}, "HTTP 502")
    sandbox.fault(method="POST", path=MESSAGE.format(id=expiring), status=401,
                  json={"error": "invalid_session_token", "message": "The session token is invalid or has expired."})
    await rec.failing("send_interview_message", {"interview_id": expiring, "content": "hello?"}, "session has expired")
    await rec.failing("send_interview_message", {"interview_id": expiring, "content": "again"}, "expired")
    # last: a 429 asking for 30 s makes the server hold every request for 30 s
    sandbox.fault(method="POST", path=MESSAGE.format(id=live), status=429,
                  json={"error": "rate_limited", "message": "Too many requests."}, headers={"Retry-After": "30"})
    await rec.failing("send_interview_message", {"interview_id": live, "content": "still there?"}, "rate limit")


@pytest.fixture
def capture_everything(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name or None)
    return caplog


def check_captured(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], seen: list[tuple[str, str]],
                   secrets: list[str]) -> None:
    for where, text in seen:
        assert_no_secrets(where, text, secrets)
    assert caplog.records, "nothing was logged: the capture is not working"
    for record in caplog.records:
        parts = [record.getMessage(), repr(record.args), record.exc_text or "", str(record.exc_info or "")]
        assert_no_secrets(f"log record {record.name}:{record.lineno}", "\n".join(parts), secrets)
    assert_no_secrets("formatted log output", caplog.text, secrets)
    out, err = capfd.readouterr()
    assert_no_secrets("stdout", out, secrets)
    assert_no_secrets("stderr", err, secrets)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_no_secret_escapes_in_memory(canary, capture_everything, capfd, tmp_path, mode) -> None:
    settings = make_settings(canary.base_url, api_key=CANARY_KEY, state_dir=str(tmp_path / "state"),
                             analysis_poll_seconds=0, request_state_keys=(CANARY_STATE_KEY,))
    async with Client(build_server(settings), mode=mode) as client:
        rec = Recorder(client)
        await whole_flow(rec, canary)
        await faults(rec, canary)
    # a read timeout (the sandbox answers after 0.6 s; we wait 0.3 s) on start and on a message
    slow = make_settings(canary.base_url, api_key=CANARY_KEY, state_dir=str(tmp_path / "state"), timeout=0.3)
    async with Client(build_server(slow), mode=mode) as client:
        rec2 = Recorder(client)
        iid = (await rec2.ok("start_interview", {})).structured_content["interview_id"]
        canary.fault(method="POST", path=START, delay=0.6)
        await rec2.failing("start_interview", {}, "Koji timed out")
        canary.fault(method="POST", path=MESSAGE.format(id=iid), delay=0.6)
        await rec2.failing("send_interview_message", {"interview_id": iid, "content": "slow?"}, "Koji timed out")
    # connection refused: nothing listens at the base URL
    gone = make_settings(f"http://127.0.0.1:{free_closed_port()}", api_key=CANARY_KEY, state_dir=":memory:")
    async with Client(build_server(gone), mode=mode) as client:
        rec3 = Recorder(client)
        await rec3.failing("start_interview", {}, "Could not reach Koji")
    await anyio.sleep(0.6)  # let the delayed sandbox requests finish, so their tokens are counted too

    assert any(r.name.startswith("httpcore") for r in capture_everything.records), "DEBUG capture of httpcore is off"
    check_captured(capture_everything, capfd, rec.seen + rec2.seen + rec3.seen, secrets_of(canary))




@pytest.mark.anyio
@pytest.mark.parametrize("echo", ["token in Koji's error message", "key in a proxy's 502 page"])
async def test_secrets_that_koji_repeats_stay_out_of_results(canary, tmp_path, echo: str) -> None:
    settings = make_settings(canary.base_url, api_key=CANARY_KEY, state_dir=str(tmp_path / "state"))
    async with Client(build_server(settings), mode="legacy") as client:
        rec = Recorder(client)
        iid = (await rec.ok("start_interview", {})).structured_content["interview_id"]
        [koji] = canary.interviews()
        if echo.startswith("token"):
            canary.fault(method="POST", path=MESSAGE.format(id=iid), status=401,
                         json={"error": "invalid_session_token",
                               "message": f"Session token {koji['session_token']} has expired."})
            await rec.failing("send_interview_message", {"interview_id": iid, "content": "hi"}, "expired")
        else:
            canary.fault(method="GET", path=INTERVIEW.format(id=iid), status=502, content_type="text/plain", times=3,
                         body=f"Bad gateway. Authorization: Bearer {CANARY_KEY}")
            await rec.failing("get_interview", {"interview_id": iid}, "HTTP 502")
    secrets = secrets_of(canary)
    for where, text in rec.seen:
        assert_no_secrets(where, text, secrets)


@pytest.mark.anyio
async def test_a_session_token_in_kojis_interview_body_stays_out_of_results(canary, tmp_path) -> None:
    settings = make_settings(canary.base_url, api_key=CANARY_KEY, state_dir=str(tmp_path / "state"))
    async with Client(build_server(settings), mode="legacy") as client:
        rec = Recorder(client)
        iid = (await rec.ok("start_interview", {})).structured_content["interview_id"]
        [koji] = canary.interviews()
        body = {k: v for k, v in koji.items() if k not in ("project", "question_index")}  # GET body + session_token
        canary.fault(method="GET", path=INTERVIEW.format(id=iid), status=200, json=body, times=2)
        await rec.ok("get_interview", {"interview_id": iid})
        resource = await client.read_resource(f"koji://interviews/{iid}")
        rec.seen.append(("resource", resource.model_dump_json(by_alias=True)))
    secrets = secrets_of(canary)
    for where, text in rec.seen:
        assert_no_secrets(where, text, secrets)


# -- over stdio, at --log-level DEBUG ----------------------------------------------------------------

class RawStdio:
    """A minimal JSON-RPC client on the real subprocess, keeping every raw byte of stdout."""

    def __init__(self, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.stderr_path = stderr_path
        with stderr_path.open("wb") as stderr:
            self.proc = subprocess.Popen([*koji_mcp_command(), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=stderr, env=env, cwd=str(ROOT))
        self.raw: list[bytes] = []
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None, timeout: float = 20) -> dict[str, Any]:
        self._next_id += 1
        rid = self._next_id
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, **({"params": params} if params is not None else {})})
        while True:
            line = self._lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"koji-mcp exited; stderr:\n{self.stderr_path.read_text()[-3000:]}")
            message = json.loads(line)
            if message.get("id") == rid and "method" not in message:
                assert "error" not in message, message
                return message["result"]

    def initialize(self) -> None:
        self.request("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                    "clientInfo": {"name": "canary", "version": "1"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def call(self, name: str, args: dict[str, Any], *, error: str | None = None) -> dict[str, Any]:
        result = self.request("tools/call", {"name": name, "arguments": args})
        text = result["content"][0]["text"]
        if error is None:
            assert not result.get("isError"), text
        else:
            assert result.get("isError") and error in text, text
        return result

    def close(self) -> tuple[bytes, str]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(15) == 0
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return b"".join(self.raw), self.stderr_path.read_text(errors="replace")


def test_no_secret_escapes_over_stdio_at_debug(canary, tmp_path) -> None:
    env = subprocess_env(KOJI_API_KEY=CANARY_KEY, KOJI_BASE_URL=canary.base_url, KOJI_MCP_STATE_DIR=str(tmp_path / "s"),
                         KOJI_MCP_REQUEST_STATE_KEYS=CANARY_STATE_KEY)
    mcp = RawStdio(["serve", "--log-level", "DEBUG", "--timeout", "1"], env, tmp_path / "stderr.log")
    try:
        mcp.initialize()
        started = mcp.call("start_interview", {"respondent": {"external_id": "canary-1"}})
        iid = started["structuredContent"]["interview_id"]
        for answer in ANSWERS:
            mcp.call("send_interview_message", {"interview_id": iid, "content": answer})
        mcp.call("complete_interview", {"interview_id": iid, "reason": "natural"})
        mcp.call("get_interview", {"interview_id": iid, "include_transcript": True})
        mcp.call("list_interviews", {})
        mcp.call("start_interviews", {"respondents": [{"external_id": f"canary-b{i}"} for i in range(3)]})
        resource = mcp.request("resources/read", {"uri": f"koji://interviews/{iid}"})
        assert json.loads(resource["contents"][0]["text"])["interview_id"] == iid
        # faults
        live = mcp.call("start_interview", {})["structuredContent"]["interview_id"]
        expiring = mcp.call("start_interview", {})["structuredContent"]["interview_id"]
        canary.fault(method="POST", path=START, status=500, json={"error": "internal_error", "message": "boom"})
        mcp.call("start_interview", {}, error="Outcome unknown")
        canary.fault(method="GET", path=INTERVIEW.format(id=live), status=502, body="Bad Gateway",
                     content_type="text/plain", times=3)
        mcp.call("get_interview", {"interview_id": live}, error="HTTP 502")
        canary.fault(method="POST", path=MESSAGE.format(id=expiring), status=401,
                     json={"error": "invalid_session_token", "message": "The session token is invalid or has expired."})
        mcp.call("send_interview_message", {"interview_id": expiring, "content": "hello?"}, error="session has expired")
        canary.fault(method="POST", path=MESSAGE.format(id=live), delay=1.5)
        mcp.call("send_interview_message", {"interview_id": live, "content": "slow?"}, error="Koji timed out")
        canary.fault(method="POST", path=MESSAGE.format(id=live), status=429,
                     json={"error": "rate_limited", "message": "Too many requests."}, headers={"Retry-After": "30"})
        mcp.call("send_interview_message", {"interview_id": live, "content": "still there?"}, error="rate limit")
    finally:
        stdout, stderr = mcp.close()
    # connection refused, from a second process pointed at a closed port
    env_gone = {**env, "KOJI_BASE_URL": f"http://127.0.0.1:{free_closed_port()}", "KOJI_MCP_STATE_DIR": ":memory:"}
    gone = RawStdio(["serve", "--log-level", "DEBUG"], env_gone, tmp_path / "stderr-gone.log")
    try:
        gone.initialize()
        gone.call("start_interview", {}, error="Could not reach Koji")
        gone.call("get_interview", {"interview_id": iid}, error="Could not reach Koji")
    finally:
        stdout_gone, stderr_gone = gone.close()

    assert "POST /api/v1/interviews/start -> 201" in stderr and " DEBUG " in stderr, "DEBUG logging is not on"
    secrets = secrets_of(canary)
    for where, data in [("stdout", stdout.decode()), ("stderr", stderr), ("stdout (refused)", stdout_gone.decode()),
                        ("stderr (refused)", stderr_gone)]:
        assert_no_secrets(where, data, secrets)
    for line in stdout.splitlines() + stdout_gone.splitlines():  # stdout is the protocol and nothing else
        assert json.loads(line)["jsonrpc"] == "2.0"


def test_doctor_names_the_key_by_its_prefix_only(canary, tmp_path) -> None:
    """The one place koji-mcp talks about the key itself (and warns about its shape) shows `pk_live_cana…`."""
    # well-shaped; then truncated, which draws a shape warning (and shows at most a third of the key)
    for key, shown in ((CANARY_KEY, SHOWN_KEY), (CANARY_KEY[:-6], "pk_live_can…")):
        env = subprocess_env(KOJI_API_KEY=key, KOJI_BASE_URL=canary.base_url, KOJI_MCP_STATE_DIR=str(tmp_path / "s"))
        proc = subprocess.run([*koji_mcp_command(), "doctor"], env=env, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, cwd=str(ROOT))
        output = proc.stdout + proc.stderr
        assert f"({shown})" in output and "KOJI_API_KEY" in output, output
        assert_no_secrets("doctor output", output, [key, key[len(shown) - 1:]])
