"""`koji-mcp doctor` against the real sandbox, a closed port and a server that is not Koji."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from koji_mcp.cli.main import main
from koji_mcp.cli.doctor import PROBE_PATH
from koji_mcp.koji.client import PROBE_INTERVIEW_ID
from koji_mcp.interviews.ledger import Ledger
from koji_mcp.sandbox import (
    DEMO_KEY,
    NO_PERMISSION_KEY,
    READ_ONLY_KEY,
    REVOKED_KEY,
    KeySpec,
    SandboxConfig,
    SandboxServer,
)
from tests.conftest import koji_mcp_command, subprocess_env, seed

KEY = "pk_live_" + "p" * 32
FIX_STATE = "set KOJI_MCP_STATE_DIR (or --state-dir) to a writable directory"
FAILED = "1 problem, 0 warnings: fix the lines marked ✗ above, then run `koji-mcp doctor` again."
FAILED_AND_WARNED = "1 problem, 1 warning: fix the lines marked ✗ above, then run `koji-mcp doctor` again."
PASSED = "0 problems, 0 warnings: all checks passed."
ACCEPTED = "✓ Koji accepted the key (a lookup of a made-up interview answered 'not found', as expected)"
ALL_PERMISSIONS = ("✓ the key has every permission the tools need: interview:start, interview:chat, "
                   "interview:complete, interview:read")
KEYS = "Dashboard > Profile > API Keys"
MESSAGE_PROBE = f"/api/v1/interviews/{PROBE_INTERVIEW_ID}/message"


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """Run `koji-mcp doctor` in-process with a clean KOJI_* environment; returns (exit code, stdout lines)."""
    for name in list(os.environ):
        if name.startswith("KOJI"):
            monkeypatch.delenv(name)

    def run(*args: str, key: str | None = DEMO_KEY, base_url: str | None = None,
            state: Path | None = None) -> tuple[int, list[str]]:
        if key is not None:
            monkeypatch.setenv("KOJI_API_KEY", key)
        if base_url is not None:
            monkeypatch.setenv("KOJI_BASE_URL", base_url)
        code = main(["doctor", "--state-dir", str(state or tmp_path / "state"), *args])
        captured = capsys.readouterr()
        run.output = captured.out + captured.err  # type: ignore[attr-defined]
        return code, captured.out.splitlines()

    return run


def state_line(state: Path, base_url: str, count: int = 0, created: bool = True, extra: str = "") -> str:
    note = " (created, mode 0700)" if created else ""
    return (f"✓ state dir {state}{note} is writable; the ledger holds {count} interview(s) started on "
            f"{base_url}{extra}")


def test_all_green_against_the_sandbox(doctor, sandbox, tmp_path) -> None:
    code, lines = doctor(base_url=sandbox.base_url)
    assert code == 0
    assert lines == [
        "✓ KOJI_API_KEY is set and shaped like a Koji key (pk_live_sand…)",
        f"✓ base URL {sandbox.base_url} is reachable",
        ACCEPTED,
        ALL_PERMISSIONS,
        state_line(tmp_path / "state", sandbox.base_url),
        PASSED,
    ]
    probes = sandbox.requests()
    # One probe per permission, each a request Koji must refuse: nothing is started, no credit spent.
    assert [(p["method"], p["path"], p["status"]) for p in probes] == [
        ("GET", PROBE_PATH, 404),
        ("POST", "/api/v1/interviews/start", 400),
        ("POST", MESSAGE_PROBE, 400),
        ("POST", "/api/interview/complete", 400),
    ]
    assert all(p["headers"]["authorization"] == f"Bearer {DEMO_KEY}" for p in probes)
    assert sandbox.interviews() == []
    if os.name != "nt":
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_counts_the_ledgers_interviews(doctor, sandbox, tmp_path) -> None:
    state = tmp_path / "state"
    with closing(Ledger.open(str(state), sandbox.base_url)) as ledger:
        seed(ledger, "a", "st_a")
        seed(ledger, "b", "st_b", owner="alice")
    with closing(Ledger.open(str(state), "https://koji.so")) as other:
        seed(other, "c", "st_c")
    code, lines = doctor("--base-url", sandbox.base_url)
    assert code == 0
    assert lines[4] == state_line(state, sandbox.base_url, 2, created=False, extra=" (3 in all)")


def test_revoked_key_fails(doctor, sandbox) -> None:
    code, lines = doctor(key=REVOKED_KEY, base_url=sandbox.base_url)
    assert code == 1
    assert lines[2] == ("✗ Koji rejected the key (401): it is invalid or revoked; check KOJI_API_KEY, or create a "
                        "new key in Dashboard > Profile > API Keys")
    assert lines[-1] == FAILED


def lacks(permission: str, tools: str, many: bool = False) -> str:
    return (f"✗ the key lacks the {permission} permission: {tools} will fail (403); create a key with it in {KEYS} "
            f"(or switch {'those tools' if many else 'that tool'} off with --read-only or --tools)")


LACKS = {
    "interview:start": lacks("interview:start", "start_interview and start_interviews", many=True),
    "interview:chat": lacks("interview:chat", "send_interview_message"),
    "interview:complete": lacks("interview:complete", "complete_interview"),
    "interview:read": lacks("interview:read", "get_interview and fetch", many=True),
}
ORDER = ("interview:start", "interview:chat", "interview:complete", "interview:read")


@pytest.mark.parametrize("missing", ORDER)
def test_a_key_lacking_one_permission_names_it_and_fails(doctor, missing: str, tmp_path) -> None:
    granted = frozenset(p for p in ORDER if p != missing)
    with SandboxServer(SandboxConfig(extra_keys={KEY: KeySpec(permissions=granted)})) as server:
        code, lines = doctor(key=KEY, base_url=server.base_url)
        started = httpx.get(f"{server.base_url}/_sandbox/interviews").json()
    assert code == 1
    accepted = ACCEPTED if missing != "interview:read" else (
        "✓ Koji accepted the key (a lookup of a made-up interview answered 403: see the permissions below)")
    assert lines[2:5] == [accepted, "✓ the key has " + ", ".join(p for p in ORDER if p != missing), LACKS[missing]]
    assert lines[-1] == FAILED
    assert started["interviews"] == [] if isinstance(started, dict) else started == []


def test_a_key_without_any_permission_lists_every_missing_one(doctor, sandbox) -> None:
    code, lines = doctor(key=NO_PERMISSION_KEY, base_url=sandbox.base_url)
    assert code == 1
    assert lines[2:7] == [
        "✓ Koji accepted the key (a lookup of a made-up interview answered 403: see the permissions below)",
        *(LACKS[p] for p in ORDER),
    ]
    assert lines[-1] == "4 problems, 0 warnings: fix the lines marked ✗ above, then run `koji-mcp doctor` again."
    assert [r["status"] for r in sandbox.requests()] == [403, 403, 403, 403]


def test_a_read_only_key_fails_unless_the_server_is_read_only(doctor, sandbox, monkeypatch) -> None:
    code, lines = doctor(key=READ_ONLY_KEY, base_url=sandbox.base_url)
    assert code == 1
    assert lines[3:7] == ["✓ the key has interview:read", LACKS["interview:start"], LACKS["interview:chat"],
                          LACKS["interview:complete"]]
    monkeypatch.setenv("KOJI_MCP_READ_ONLY", "1")
    code, lines = doctor(key=READ_ONLY_KEY, base_url=sandbox.base_url)
    assert code == 0
    assert lines[3:7] == [
        "✓ the key has interview:read",
        "! the key lacks the interview:start permission; start_interview and start_interviews are switched off "
        "here, so nothing fails",
        "! the key lacks the interview:chat permission; send_interview_message is switched off here, so nothing "
        "fails",
        "! the key lacks the interview:complete permission; complete_interview is switched off here, so nothing "
        "fails",
    ]
    assert lines[-1] == "0 problems, 3 warnings: koji-mcp can run; the lines marked ! say what to improve."


def test_missing_key_fails_without_asking_koji(doctor, sandbox) -> None:
    code, lines = doctor(key=None, base_url=sandbox.base_url)
    assert code == 1
    assert lines[0] == ("✗ KOJI_API_KEY is not set: export your Koji API key (pk_live_…, Dashboard > Profile > API "
                        "Keys), or try everything without an account with `koji-mcp doctor --sandbox`")
    assert lines[2] == "! the key was not tested with Koji: KOJI_API_KEY is not set"
    assert sandbox.requests() == []


def test_odd_key_shape_warns_and_koji_decides(doctor, sandbox) -> None:
    code, lines = doctor(key="pk_live_short", base_url=sandbox.base_url)
    assert code == 1
    assert lines[0] == ("! KOJI_API_KEY (pk_l…) has 5 characters after pk_live_, not 32: Koji keys are pk_live_ + 32 "
                        "characters; check for quotes, spaces or a truncated copy (the request below tells whether "
                        "Koji accepts it)")
    assert lines[2].startswith("✗ Koji rejected the key (401)")


def test_closed_port(doctor, tmp_path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago, with nothing listening now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, lines = doctor(base_url=f"http://127.0.0.1:{port}")
    assert code == 1
    assert lines[1:3] == [
        f"✗ nothing is listening at 127.0.0.1:{port} (connection refused): check KOJI_BASE_URL (Koji is "
        "https://koji.so; a local sandbox prints its URL when it starts)",
        "! the key was not tested with Koji: the base URL is unreachable",
    ]
    assert lines[-1] == FAILED_AND_WARNED


@pytest.fixture
def not_koji() -> Iterator[Callable[[int, str, str], str]]:
    """A tiny stdlib HTTP server answering every GET with a fixed non-Koji response."""
    reply: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            body = reply["body"].encode()
            self.send_response(reply["status"])
            self.send_header("Content-Type", reply["type"])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()

    def configure(status: int, content_type: str, body: str) -> str:
        reply.update(status=status, type=content_type, body=body)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield configure
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "content_type", "body"), [
    (404, "text/plain", "Not Found"),
    (405, "text/html", "<h1>Method Not Allowed</h1>"),
    (404, "application/json", '{"detail": "Not Found"}'),  # JSON, but not Koji's {error, message}
])
def test_base_url_that_is_not_koji(doctor, not_koji, status: int, content_type: str, body: str) -> None:
    base_url = not_koji(status, content_type, body)
    code, lines = doctor(base_url=base_url)
    assert code == 1
    assert lines[1] == f"✓ base URL {base_url} is reachable"
    assert lines[2] == (f"✗ {base_url}{PROBE_PATH} answered {status} without Koji's JSON error body: "
                        "KOJI_BASE_URL is probably not Koji's API (it should be https://koji.so)")


def test_redirect_is_not_followed(doctor, not_koji) -> None:
    base_url = not_koji(301, "text/plain", "moved")
    code, lines = doctor(base_url=base_url)
    assert code == 1
    assert lines[2].startswith(f"✗ {base_url} redirects (301) to ?: set KOJI_BASE_URL to the final origin")


@pytest.mark.parametrize(("status", "headers", "expected", "exit_code"), [
    (503, {}, "✗ Koji answered 503: trouble on Koji's side, not in your setup; try again later", 1),
    (429, {"Retry-After": "7"}, "! Koji is rate limiting this key (429), so it could not be checked now; try again "
                                "in 7 s", 0),
    (429, {}, "! Koji is rate limiting this key (429), so it could not be checked now; try again in a minute", 0),
])
def test_koji_trouble(doctor, sandbox, status: int, headers: dict, expected: str, exit_code: int) -> None:
    # The probe follows the server's own rules: a GET is retried twice on 5xx, never on 429.
    sandbox.fault(method="GET", path=PROBE_PATH, status=status, headers=headers, times=3,
                  json={"error": "rate_limited" if status == 429 else "internal_error", "message": "x"})
    code, lines = doctor(base_url=sandbox.base_url)
    assert (code, lines[2]) == (exit_code, expected)
    assert len(sandbox.requests()) == (3 if status == 503 else 1)  # nothing else is probed


def test_unwritable_state_dir(doctor, sandbox, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    state = blocker / "state"
    code, lines = doctor(base_url=sandbox.base_url, state=state)
    assert code == 1
    assert lines[4] == f"✗ cannot create state dir {state}: Not a directory: {FIX_STATE}"
    assert lines[-1] == FAILED


def test_state_dir_that_is_a_file(doctor, sandbox, tmp_path) -> None:
    state = tmp_path / "a-file"
    state.write_text("")
    code, lines = doctor(base_url=sandbox.base_url, state=state)
    assert (code, lines[4]) == (1, f"✗ state dir {state} is not a directory: {FIX_STATE}")


def test_memory_state_dir_warns(doctor, sandbox) -> None:
    code, lines = doctor(base_url=sandbox.base_url, state=Path(":memory:"))
    assert code == 0
    assert lines[4] == ("! state dir is :memory:: the ledger is forgotten on restart (list_interviews and batch resume "
                        "see nothing); set KOJI_MCP_STATE_DIR to a directory to keep it")


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("KOJI_TIMEOUT", "soon", "✗ settings: KOJI_TIMEOUT must be a number of seconds (got 'soon')"),
    ("KOJI_BASE_URL", "koji.so", "✗ settings: KOJI_BASE_URL must start with http:// or https:// (got 'koji.so')"),
])
def test_bad_setting_is_one_failed_line(doctor, monkeypatch, name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    code, lines = doctor()
    assert (code, lines) == (1, [expected, FAILED])


def test_dns_failure(doctor, monkeypatch) -> None:
    def no_dns(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    code, lines = doctor(base_url="https://koji.example")
    assert code == 1
    assert lines[1:3] == [
        "✗ cannot resolve koji.example (DNS): check KOJI_BASE_URL for a typo, and your network",
        "! the key was not tested with Koji: the base URL is unreachable",
    ]


def test_sandbox_flag_needs_no_key(doctor, tmp_path) -> None:
    code, lines = doctor("--sandbox", key=None)
    assert code == 0
    assert lines[0].startswith("✓ using an in-process sandbox at http://127.0.0.1:")
    assert lines[0].endswith(" with its demo key (--sandbox)")
    assert lines[2:4] == [ACCEPTED, ALL_PERMISSIONS] and lines[-1] == PASSED
    # the ledger --sandbox really uses (never the real one)
    assert lines[4] == state_line(tmp_path / "state" / "sandbox", "sandbox:")
    assert not (tmp_path / "state" / "ledger.sqlite3").exists()


@pytest.mark.parametrize("shaped", [True, False])
def test_the_key_never_appears_in_the_output(doctor, shaped: bool) -> None:
    canary = ("pk_live_" + secrets.token_hex(16)) if shaped else ("canary-" + secrets.token_hex(16))
    config = SandboxConfig(extra_keys={canary: KeySpec(description="canary")}) if shaped else SandboxConfig()
    with SandboxServer(config) as server:
        code, lines = doctor(key=canary, base_url=server.base_url)
    assert code == (0 if shaped else 1)
    out = doctor.output
    assert canary not in out and canary[12:] not in out and canary[-8:] not in out
    if shaped:
        assert lines[0] == f"✓ KOJI_API_KEY is set and shaped like a Koji key ({canary[:12]}…)"
        assert lines[2] == ACCEPTED
    else:
        assert lines[0].startswith(f"! KOJI_API_KEY ({canary[:12]}…) does not start with pk_live_: ")
        assert lines[2].startswith("✗ Koji rejected the key (401)")


def test_real_subprocess_and_no_mcp_sdk_import(sandbox, tmp_path) -> None:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url)
    proc = subprocess.run([*koji_mcp_command(), "doctor", "--state-dir", str(tmp_path / "s")], env=env,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == PASSED and proc.stderr == ""
    probe = subprocess.run([sys.executable, "-c", "import sys, koji_mcp.cli.main, koji_mcp.cli.doctor; "
                            "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))"],
                           env=env, capture_output=True, text=True, timeout=30)
    assert probe.stdout.strip() == "[]", probe.stderr
