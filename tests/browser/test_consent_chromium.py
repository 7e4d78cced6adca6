"""The consent page in real headless Chromium: approve, deny, wrong code (run by `make browser`).

Marked `browser`: plain `make test` deselects the marker (see pyproject addopts); `make browser`
installs Debian's chromium and playwright-core first and runs exactly these tests, which fail, never
skip, when either is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.e2e.test_oauth_builtin import ALICE, OAuthServer, new_client, start_server, stop
from tests.oauth_flow import Authorization, query

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("consent.cjs")
NODE_MODULES = ROOT / ".tools" / "browser" / "node_modules"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(sandbox_server, tmp_path_factory) -> Iterator[OAuthServer]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser` (it installs Debian's chromium)"
    assert (NODE_MODULES / "playwright-core").is_dir(), "playwright-core is missing: run `make browser`"
    assert shutil.which("node"), "node is not on PATH"
    running = start_server(sandbox_server.base_url, tmp_path_factory.mktemp("browser-state"))
    try:
        yield running
    finally:
        stop(running)


class _Callback(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits.append(self.path)
        body = b"<!doctype html><title>callback</title>OK"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def callback() -> Iterator[str]:
    """The connector's redirect URI: a real loopback listener, as a native client would run."""
    httpd = HTTPServer(("127.0.0.1", 0), _Callback)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/callback"
    httpd.shutdown()


def drive(server: OAuthServer, callback: str, decision: str, code: str | None = None,
          name: str = "Browser connector") -> tuple[Authorization, dict]:
    flow = Authorization(server.base, new_client(server, client_name=name, redirect_uris=[callback]),
                         redirect_uri=callback)
    params = {"response_type": "code", "client_id": flow.client_id, "redirect_uri": callback, "state": flow.state,
              "code_challenge": flow.challenge, "code_challenge_method": "S256"}
    args = {"url": f"{server.base}/authorize?{urlencode(params)}", "decision": decision, "base": server.base}
    if code is not None:
        args["code"] = code
    proc = subprocess.run(["node", str(DRIVER), json.dumps(args)], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "NODE_PATH": str(NODE_MODULES), "CHROMIUM": CHROMIUM})
    assert proc.returncode == 0, proc.stderr
    return flow, json.loads(proc.stdout)


def check_consent_page(server: OAuthServer, seen: dict, name: str) -> None:
    assert seen["url"].startswith(f"{server.base}/consent?request=")  # /authorize sent the browser here
    assert seen["status"] == 200 and seen["forms"] == 1 and seen["passwordFields"] == 1
    assert seen["heading"] == f"Connect {name} to Koji interviews?"


def test_approve_in_chromium_lands_on_the_redirect_uri_with_a_working_code(server, callback) -> None:
    flow, result = drive(server, callback, "approve", ALICE)
    check_consent_page(server, result["consent"], "Browser connector")
    assert result["after"]["status"] == 200 and result["after"]["url"].startswith(callback + "?")
    params = query(result["after"]["url"])
    assert params["state"] == flow.state
    assert flow.exchange(params["code"]).status_code == 200
    assert result["consoleErrors"] == []  # the CSP blocks nothing the page needs


def test_deny_in_chromium_returns_access_denied(server, callback) -> None:
    flow, result = drive(server, callback, "deny")
    params = query(result["after"]["url"])
    assert result["after"]["url"].startswith(callback + "?")
    assert params["error"] == "access_denied" and params["state"] == flow.state and "code" not in params


def test_wrong_code_in_chromium_shows_the_page_again_with_an_error(server, callback) -> None:
    name = "<b>Bold</b> & co"
    _, result = drive(server, callback, "approve", "wrong-code-0123456789abcdef", name=name)
    check_consent_page(server, result["consent"], name)  # shown as text, never as markup
    assert result["after"]["status"] == 401 and result["after"]["url"] == f"{server.base}/consent"
    assert result["after"]["error"].startswith("That access code is not right.")
