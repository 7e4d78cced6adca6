"""Test-side helpers for the built-in OAuth server: PKCE, registration and the consent form.

Shared by tests/e2e/test_oauth_builtin.py, tests/browser/ and bench/conformance_auth.py. The consent
form is read with the standard library's HTML parser and checked against the contract the issue
fixes (one POST form, a password `access_code`, hidden request + CSRF inputs, approve/deny buttons).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


@dataclass
class ConsentForm:
    """What the consent page's HTML holds, as the contract describes it."""

    forms: list[dict[str, str]] = field(default_factory=list)
    inputs: list[dict[str, str]] = field(default_factory=list)
    buttons: list[dict[str, str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    scripts: int = 0

    @property
    def hidden(self) -> dict[str, str]:
        return {i["name"]: i.get("value", "") for i in self.inputs if i.get("type") == "hidden"}

    def check_contract(self) -> None:
        assert len(self.forms) == 1 and self.forms[0].get("method", "").lower() == "post", self.forms
        passwords = [i for i in self.inputs if i.get("type") == "password"]
        assert [p.get("name") for p in passwords] == ["access_code"], self.inputs
        assert set(self.hidden) == {"request", "csrf_token"} and all(self.hidden.values()), self.hidden
        decisions = sorted((b.get("type"), b.get("name"), b.get("value")) for b in self.buttons)
        assert decisions == [("submit", "decision", "approve"), ("submit", "decision", "deny")], self.buttons
        assert self.scripts == 0


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = ConsentForm()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.form.forms.append(values)
        elif tag == "input":
            self.form.inputs.append(values)
        elif tag == "button":
            self.form.buttons.append(values)
        elif tag in ("script", "link", "img", "iframe"):
            self.form.scripts += 1

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.form.text.append(data.strip())


def parse_consent(page: str) -> ConsentForm:
    parser = _Parser()
    parser.feed(page)
    return parser.form


def register(base: str, **metadata: Any) -> httpx.Response:
    body = {"redirect_uris": ["http://127.0.0.1:9/callback"], "client_name": "Test connector",
            "token_endpoint_auth_method": "none", **metadata}
    return httpx.post(f"{base}/register", json=body, timeout=10)


@dataclass
class Authorization:
    """One /authorize request carried through the consent page by a cookie-keeping httpx client."""

    base: str
    client_id: str
    redirect_uri: str = "http://127.0.0.1:9/callback"
    state: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    verifier: str = ""
    challenge: str = ""
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, follow_redirects=False))
    consent_url: str = ""
    form: ConsentForm | None = None

    def __post_init__(self) -> None:
        if not self.verifier:
            self.verifier, self.challenge = pkce()

    def start(self, **extra: str) -> httpx.Response:
        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "state": self.state, "code_challenge": self.challenge, "code_challenge_method": "S256", **extra}
        return self.http.get(f"{self.base}/authorize", params={k: v for k, v in params.items() if v is not None})

    def open_consent(self, **extra: str) -> httpx.Response:
        """/authorize must answer 302 to the consent page on the same origin; fetch that page."""
        r = self.start(**extra)
        assert r.status_code == 302, (r.status_code, r.text)
        location = r.headers["location"]
        assert location.startswith(f"{self.base}/consent?"), location
        self.consent_url = location
        page = self.http.get(location)
        assert page.status_code == 200, page.text
        self.form = parse_consent(page.text)
        self.form.check_contract()
        return page

    def submit(self, decision: str, access_code: str = "") -> httpx.Response:
        assert self.form is not None
        data = {**self.form.hidden, "access_code": access_code, "decision": decision}
        return self.http.post(f"{self.base}/consent", data=data)

    def approve(self, access_code: str) -> str:
        """Approve with `access_code`; returns the authorization code from the redirect."""
        if self.form is None:
            self.open_consent()
        r = self.submit("approve", access_code)
        assert r.status_code == 302, (r.status_code, r.text[:500])
        assert r.headers["location"].startswith(self.redirect_uri + "?"), r.headers["location"]
        params = query(r.headers["location"])
        assert params["state"] == self.state
        return params["code"]

    def exchange(self, code: str, **overrides: str) -> httpx.Response:
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": self.verifier, **overrides}
        return httpx.post(f"{self.base}/token", data=data, timeout=10)


def refresh(base: str, client_id: str, refresh_token: str) -> httpx.Response:
    return httpx.post(f"{base}/token", data={"grant_type": "refresh_token", "refresh_token": refresh_token,
                                             "client_id": client_id}, timeout=10)


MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                         "clientInfo": {"name": "t", "version": "1"}}}


def mcp_status(base: str, token: str) -> int:
    """The HTTP status /mcp gives an initialize request carrying `token`."""
    r = httpx.post(f"{base}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"},
                   timeout=10)
    return r.status_code
