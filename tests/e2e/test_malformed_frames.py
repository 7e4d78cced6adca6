"""100 malformed JSON-RPC frames on stdio against the real `koji-mcp` subprocess.

Raw bytes are written to the child's stdin (kept open throughout, as hosts do); a thread reads its
stdout line by line. Properties:
- every line on stdout is a JSON-RPC 2.0 message (nothing else ever reaches stdout), and every
  response carries an id we sent plus exactly one of result / error;
- every well-formed request gets its answer (a result or a JSON-RPC error), once; no answer carries
  an id we never sent;
- every line that is not a JSON-RPC message gets a JSON-RPC error with id null (-32700 parse error
  for non-JSON, -32600 for JSON that is not JSON-RPC) and one warning line on stderr (the SDK alone
  drops such lines silently);
- the process never dies, and after the 100 frames a fresh `initialize` -> `notifications/initialized`
  -> `tools/call start_interview` sequence succeeds.
"""

from __future__ import annotations

import json
import queue
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import ROOT, koji_mcp_command, subprocess_env

MB = 1024 * 1024
PROTOCOL = "2025-11-25"
INIT_PARAMS = {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}


@dataclass
class Frame:
    data: bytes
    label: str
    expect_id: Any = None  # the id whose answer must come back (None: may be ignored)


def j(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def req(rid: Any, method: str, params: Any = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        message["params"] = params
    message.update(extra)
    return message


def malformed_frames() -> list[Frame]:
    rng = random.Random(20240527)
    frames: list[Frame] = []
    ids = iter(range(1000, 2000))

    def answered(method: str, params: Any = None, label: str | None = None) -> None:
        rid = next(ids)
        frames.append(Frame(j(req(rid, method, params)), label or f"{method} (id {rid})", expect_id=rid))

    def raw(data: bytes, label: str) -> None:
        frames.append(Frame(data if data.endswith(b"\n") else data + b"\n", label))

    # -- before initialize: requests and notifications
    answered("ping", label="ping before initialize")
    answered("tools/list", label="tools/list before initialize")
    answered("tools/call", {"name": "start_interview", "arguments": {}}, label="tools/call before initialize")
    raw(j({"jsonrpc": "2.0", "method": "notifications/initialized"}), "initialized before initialize")
    # -- truncated JSON
    whole = j(req(7, "tools/call", {"name": "list_interviews", "arguments": {}}))
    for cut in (1, 2, 10, 25, len(whole) // 2, len(whole) - 3, len(whole) - 2):
        raw(whole[:cut], f"truncated at {cut}")
    raw(b'{"jsonrpc":"2.0","id":8,"method":"ping",}', "trailing comma")
    raw(b"{'jsonrpc':'2.0','id':9,'method':'ping'}", "single quotes")
    raw(b'{"jsonrpc":"2.0","id":10,"method":"ping"}{"jsonrpc":"2.0","id":11,"method":"ping"}', "two objects on a line")
    # -- empty and whitespace lines
    for blank in (b"", b" ", b"\t", b"\r", b"   \r", b"\x0b\x0c"):
        raw(blank, f"blank {blank!r}")
    # -- wrong types for id
    for bad_id in ({}, [], True, None, 1.5, {"a": 1}, [1]):
        raw(j(req(bad_id, "ping")), f"id {bad_id!r}")
    for rid in ("string-id", "", 0, -1, 2**53 + 1, 10**30):
        frames.append(Frame(j(req(rid, "ping")), f"ping with id {rid!r}", expect_id=rid))
    # -- wrong types for method
    for bad_method in (1, None, [], {}, True):
        raw(j(req(next(ids), bad_method)), f"method {bad_method!r}")  # type: ignore[arg-type]
    answered("", label="empty method")
    answered("no/such/method", label="unknown method")
    answered("tools/call\u0000", label="method with NUL")
    # -- wrong types for params
    for bad_params in ("x", 1, [1, 2], True):
        raw(j(req(next(ids), "tools/list", bad_params)), f"params {bad_params!r}")
    # -- wrong or missing jsonrpc version
    raw(j({"jsonrpc": "1.0", "id": next(ids), "method": "ping"}), "jsonrpc 1.0")
    raw(j({"jsonrpc": 2.0, "id": next(ids), "method": "ping"}), "jsonrpc as a number")
    raw(j({"id": next(ids), "method": "ping"}), "no jsonrpc member")
    # -- JSON that is not an object; batches (JSON-RPC 2.0 batches were removed from MCP)
    for value in (b"null", b"true", b"42", b'"ping"', b"[]", b"[1,2,3]"):
        raw(value, f"JSON {value!r}")
    raw(b"[" + j(req(next(ids), "ping")).strip() + b"," + j(req(next(ids), "ping")).strip() + b"]", "batch of pings")
    raw(b"[" * 50_000, "deeply nested arrays")
    raw(b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "deeply nested objects")
    # -- binary garbage and broken encodings
    for n in (1, 16, 200, 4096):
        raw(bytes(rng.randrange(256) for _ in range(n)).replace(b"\n", b"\x00"), f"{n} random bytes")
    raw(b"\x00\x00\x00\x00", "NUL bytes")
    raw(b"\xff\xfe{\x00}\x00", "UTF-16 with BOM")
    raw(b'{"jsonrpc":"2.0","id":12,"method":"p\xc3\x28ng"}', "invalid UTF-8 inside JSON")
    raw(b'{"jsonrpc":"2.0","id":13,"method":"\\ud800"}', "lone surrogate escape")
    raw(b"\xef\xbb\xbf" + j(req(14, "ping")), "UTF-8 BOM before JSON")
    # -- notifications for unknown methods, and notifications with odd params
    raw(j({"jsonrpc": "2.0", "method": "notifications/unknown"}), "unknown notification")
    raw(j({"jsonrpc": "2.0", "method": "foo/bar", "params": {"x": 1}}), "unknown notification with params")
    raw(j({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 999_999}}),
        "cancel of an unknown request")
    raw(j({"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "t", "progress": "x"}}),
        "bad progress notification")
    # -- responses the server never asked for
    raw(j({"jsonrpc": "2.0", "id": 424242, "result": {}}), "stray result")
    raw(j({"jsonrpc": "2.0", "id": 424243, "error": {"code": -1, "message": "x"}}), "stray error")
    raw(j({"jsonrpc": "2.0", "id": 424244, "result": {}, "error": {"code": 1, "message": "x"}}), "result and error")
    # -- very long lines
    raw(b"a" * MB, "1 MB of letters")
    raw(b'{"jsonrpc":"2.0","id":15,"method":"ping","params":{"x":"' + b"y" * MB, "1 MB truncated JSON")
    answered("ping", {"_meta": {"pad": "z" * MB}}, label="1 MB valid ping")
    # -- a valid initialize in the middle, then requests that are wrong in other ways
    rid = next(ids)
    frames.append(Frame(j(req(rid, "initialize", INIT_PARAMS)), "initialize in the middle", expect_id=rid))
    raw(j({"jsonrpc": "2.0", "method": "notifications/initialized"}), "initialized")
    answered("initialize", INIT_PARAMS, label="second initialize")
    answered("initialize", {**INIT_PARAMS, "protocolVersion": "1999-01-01"},
             label="initialize with an unknown version")
    answered("initialize", {}, label="initialize without params")
    answered("tools/call", {}, label="tools/call without name")
    answered("tools/call", {"name": 5}, label="tools/call with a numeric name")
    answered("tools/call", {"name": "start_interview", "arguments": [1, 2]}, label="tools/call with list arguments")
    answered("tools/call", {"name": "start_interview", "arguments": "x"}, label="tools/call with string arguments")
    answered("tools/call", {"name": "no_such_tool", "arguments": {}}, label="unknown tool")
    answered("tools/call", {"name": "list_interviews", "arguments": {"limit": 10**400}}, label="huge limit")
    answered("tools/call", {"name": "get_interview", "arguments": {"interview_id": "\u202e" * 10}},
             label="bidi interview_id")
    answered("resources/read", {"uri": "koji://interviews/../../etc/passwd"}, label="resource path traversal")
    answered("resources/read", {"uri": 12}, label="resource uri of the wrong type")
    answered("prompts/get", {"name": "nope"}, label="unknown prompt")
    answered("logging/setLevel", {"level": "shouting"}, label="bad log level")
    answered("completion/complete", {"ref": {"type": "ref/prompt", "name": "x"}}, label="bad completion request")
    raw(b'{"jsonrpc":"2.0","id":16,"method":"tools/call",'
        b'"params":{"name":"list_interviews","arguments":{"limit":NaN}}}',
        "NaN literal")
    raw(b'{"jsonrpc":"2.0","id":17,"id":18,"method":"ping"}', "duplicate id keys")
    while len(frames) < 100:
        raw(bytes(rng.randrange(32, 127) for _ in range(rng.randrange(1, 80))), "printable garbage")
    assert len(frames) == 100, len(frames)
    return frames


class StdoutReader:
    """Reads the child's stdout lines in a thread, so the test can wait with a timeout."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self._run, args=(proc,), daemon=True)
        self._thread.start()

    def _run(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_message(self, timeout: float) -> dict[str, Any] | None:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if line is None:
            raise AssertionError("koji-mcp closed stdout (it died)")
        self.seen.append(line)
        return parse_stdout_line(line)

    def wait_for(self, rid: Any, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next_message(left)
            if message is not None and message.get("id") == rid and "method" not in message:
                return message
        raise AssertionError(f"no answer to id {rid!r} within {timeout} s")


def parse_stdout_line(line: bytes) -> dict[str, Any]:
    assert line.endswith(b"\n"), f"an unterminated line on stdout: {line[:200]!r}"
    try:
        message = json.loads(line)
    except ValueError:
        raise AssertionError(f"non-JSON on stdout: {line[:300]!r}") from None
    assert isinstance(message, dict) and message.get("jsonrpc") == "2.0", f"not JSON-RPC 2.0: {line[:300]!r}"
    if "method" in message:  # a request or notification from the server
        assert isinstance(message["method"], str)
        return message
    assert "id" in message, f"a response without id: {line[:300]!r}"
    assert ("result" in message) != ("error" in message), f"needs exactly one of result/error: {line[:300]!r}"
    if "error" in message:
        error = message["error"]
        assert isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str)
    return message


@pytest.fixture
def server(sandbox, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], StdoutReader, Path]]:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url,
                         KOJI_MCP_STATE_DIR=str(tmp_path / "state"))
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(koji_mcp_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                env=env, cwd=str(ROOT))
    try:
        yield proc, StdoutReader(proc), stderr_path
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def test_hundred_malformed_frames_then_a_normal_session(server, sandbox) -> None:
    proc, reader, stderr_path = server
    assert proc.stdin is not None
    frames = malformed_frames()
    for frame in frames:
        proc.stdin.write(frame.data)
        proc.stdin.flush()
        assert proc.poll() is None, f"koji-mcp died after {frame.label!r}; stderr:\n{stderr_path.read_text()[-3000:]}"

    # every well-formed request is answered (result or JSON-RPC error), once, in any order
    expected = [f.expect_id for f in frames if f.expect_id is not None]
    answers: dict[Any, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 30
    while any(rid not in answers for rid in expected) and (left := deadline - time.monotonic()) > 0:
        message = reader.next_message(min(left, 1.0))
        if message is not None and "method" not in message:
            answers.setdefault(message["id"], []).append(message)
    missing = [(f.label, f.expect_id) for f in frames if f.expect_id is not None and f.expect_id not in answers]
    assert not missing, f"unanswered requests: {missing}"
    # drain what else came, then check nothing was answered twice or for an id never sent
    while (message := reader.next_message(0.5)) is not None:
        if "method" not in message:
            answers.setdefault(message["id"], []).append(message)
    parse_errors = answers.pop(None, [])
    assert all(e.get("error", {}).get("code") in (-32700, -32600) for e in parse_errors), parse_errors[:3]
    not_json = [f.label for f in frames if _not_json(f.data)]
    assert len(parse_errors) >= len(not_json), (len(parse_errors), not_json)
    assert any(e["error"]["code"] == -32600 for e in parse_errors)  # e.g. the frame with an object as id
    sent_ids = {_frame_id(f.data) for f in frames} - {None}
    assert set(answers) <= sent_ids, f"answers to ids never sent: {set(answers) - sent_ids}"
    assert all(len(a) == 1 for a in answers.values()), {rid: len(a) for rid, a in answers.items() if len(a) > 1}
    init = answers[next(f.expect_id for f in frames if f.label == "initialize in the middle")][0]
    assert init["result"]["serverInfo"]["name"] == "koji-mcp"
    ping = answers[next(f.expect_id for f in frames if f.label == "1 MB valid ping")][0]
    assert ping.get("result") == {}
    assert proc.poll() is None

    # after all that: a normal session still works
    proc.stdin.write(j(req("final-init", "initialize", INIT_PARAMS)))
    proc.stdin.write(j({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    proc.stdin.flush()
    assert reader.wait_for("final-init")["result"]["protocolVersion"] == PROTOCOL
    proc.stdin.write(j(req("final-call", "tools/call", {"name": "start_interview",
                                                        "arguments": {"respondent": {"display_name": "After"}}})))
    proc.stdin.flush()
    result = reader.wait_for("final-call")["result"]
    assert result.get("isError") is not True, result
    [koji] = [i for i in sandbox.interviews() if (i.get("respondent") or {}).get("display_name") == "After"]
    assert result["structuredContent"]["interview_id"] == koji["interview_id"]

    # a clean exit on EOF, and still nothing but JSON-RPC on stdout
    proc.stdin.close()
    assert proc.wait(15) == 0, stderr_path.read_text()[-3000:]
    while True:
        line = reader.lines.get(timeout=5)
        if line is None:
            break
        reader.seen.append(line)
        parse_stdout_line(line)
    assert reader.seen, "no output at all"
    stderr = stderr_path.read_text(errors="replace")
    assert DEMO_KEY not in stderr and koji["session_token"] not in stderr
    assert stderr.count("dropped a malformed frame on stdin") == len(parse_errors), stderr[-3000:]


def _not_json(data: bytes) -> bool:
    """A one-line frame that is not JSON at all (frames with CR are split by the SDK's reader: skipped)."""
    if b"\r" in data:
        return False
    try:
        json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return True
    return False


def _frame_id(data: bytes) -> Any:
    """The id a frame carries, read as the SDK reads stdin (UTF-8, bad bytes replaced); None if none."""
    try:
        message = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return None
    if isinstance(message, dict) and not isinstance(message.get("id"), dict | list):
        return message.get("id")
    return None
