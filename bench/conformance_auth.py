"""The conformance suite's authorization-server scenarios against `koji-mcp serve --oauth`.

    .venv/bin/python bench/conformance_auth.py      (run by bench/conformance.sh, i.e. make conformance)

Needs Node >= 22 first on PATH (conformance.sh arranges it). Starts koji-mcp with the built-in
authorization server on a free loopback port (sandbox upstream, in-memory ledger), registers a
public client whose redirect URI is the suite's callback server, then runs
`conformance authorization` (every authorization-server scenario: RFC 8414 metadata and the
authorization code grant with PKCE and the RFC 8707 resource). The suite prints the /authorize URL
for a person to open; this script is that person: it follows the URL to the consent page, types an
access code, approves, and delivers the redirect to the suite's callback. Exit code: the suite's.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.e2e.test_http import free_port  # noqa: E402
from tests.oauth_flow import parse_consent  # noqa: E402  (the test helpers read the consent form)

SUITE = f"@modelcontextprotocol/conformance@{os.environ.get('CONFORMANCE_AUTH_VERSION', '0.2.0-alpha.12')}"
OUT = ROOT / "bench" / "results" / "conformance-auth"
KOJI = ROOT / ".venv" / "bin" / "koji-mcp"


def say(message: str) -> None:
    print(f"conformance-auth: {message}", file=sys.stderr, flush=True)


def wait_for_health(base: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("koji-mcp exited early; see bench/results/conformance-auth/server.log")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("koji-mcp did not come up in 30 s")


def approve(authorize_url: str, base: str, access_code: str) -> None:
    """A person in a browser: open the URL, read the consent page, type the code, approve, land on the callback."""
    with httpx.Client(timeout=10) as browser:
        r = browser.get(authorize_url)
        if r.status_code != 302 or not r.headers["location"].startswith(f"{base}/consent?"):
            raise RuntimeError(f"/authorize answered {r.status_code} {r.headers.get('location', r.text[:200])}")
        form = parse_consent(browser.get(r.headers["location"]).text)
        form.check_contract()
        r = browser.post(f"{base}/consent", data={**form.hidden, "access_code": access_code, "decision": "approve"})
        if r.status_code != 302:
            raise RuntimeError(f"consent answered {r.status_code}")
        for attempt in range(50):  # the suite's callback server may still be starting
            try:
                browser.get(r.headers["location"])
                break
            except httpx.ConnectError:
                time.sleep(0.1)
    say("consent approved; redirect delivered to the suite's callback")


def approve_or_stop(suite: subprocess.Popen, url: str, base: str, access_code: str) -> None:
    try:
        approve(url, base, access_code)
    except Exception as exc:  # the suite would wait 5 minutes for a callback that never comes
        say(f"could not approve on the consent page: {exc}")
        suite.terminate()


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    port, callback_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    access_code = secrets.token_urlsafe(24)
    env = {**os.environ, "KOJI_MCP_AUTH_TOKEN": f"conformance={access_code}", "KOJI_MCP_OAUTH": "builtin"}
    with open(OUT / "server.log", "w") as log:
        server = subprocess.Popen(
            [str(KOJI), "serve", "--sandbox", "--transport", "streamable-http", "--host", "127.0.0.1",
             "--port", str(port), "--state-dir", ":memory:"],
            env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        wait_for_health(base, server)
        registered = httpx.post(f"{base}/register", json={
            "client_name": "MCP conformance suite", "token_endpoint_auth_method": "none",
            "redirect_uris": [f"http://127.0.0.1:{callback_port}/callback"]}, timeout=10)
        registered.raise_for_status()
        client_id = registered.json()["client_id"]
        say(f"koji-mcp --oauth at {base}; registered client {client_id}; suite {SUITE}")
        suite = subprocess.Popen(
            ["npx", "--yes", SUITE, "authorization", "--url", base, "--client-id", client_id,
             "--resource", f"{base}/mcp", "--port", str(callback_port), "-o", str(OUT)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
        authorize = re.compile(re.escape(f"{base}/authorize?") + r"\S+")
        assert suite.stdout is not None
        for line in suite.stdout:
            sys.stdout.write(line)
            match = authorize.search(line)
            if match:
                url = match.group(0)
                # Approve off the read loop (the suite keeps printing); approve() waits for its callback server.
                threading.Thread(target=approve_or_stop, args=(suite, url, base, access_code), daemon=True).start()
        code = suite.wait()
        say("passed" if code == 0 else f"FAILED with exit code {code} (results in {OUT.relative_to(ROOT)})")
        return code
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
