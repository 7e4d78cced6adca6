"""`serve --oauth`: the built-in authorization server, end to end over real HTTP.

A real koji-mcp subprocess (one per module, plus a fresh one where state matters) on the sandbox;
the SDK's own OAuth client and plain httpx drive registration, the consent page and /token.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env
from tests.e2e.test_http import free_port, wait_for_port
from tests.oauth_flow import Authorization, mcp_status, parse_consent, query, refresh, register

pytestmark = pytest.mark.anyio
ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdefgh"
SCOPES = "interviews:read interviews:write"


@dataclass
class OAuthServer:
    port: int
    state: Path
    proc: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def clients_in_db(self) -> int:
        with sqlite3.connect(self.state / "ledger.sqlite3") as db:
            return db.execute("SELECT COUNT(*) FROM oauth_clients").fetchone()[0]


def start_server(sandbox_url: str, state: Path, port: int | None = None, *extra: str,
                 tokens: str = f"alice={ALICE},bob={BOB}", database_url: str = "") -> OAuthServer:
    port = port or free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox_url, KOJI_MCP_STATE_DIR=str(state),
                         KOJI_MCP_AUTH_TOKEN=tokens, KOJI_MCP_OAUTH="builtin", KOJI_MCP_DATABASE_URL=database_url)
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--transport", "streamable-http", "--port", str(port),
                             *extra], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for_port(port, proc)
    return OAuthServer(port, state, proc)


def stop(server: OAuthServer) -> None:
    server.proc.terminate()
    server.proc.wait(10)


@pytest.fixture(scope="module")
def server(sandbox_server, tmp_path_factory) -> Iterator[OAuthServer]:
    running = start_server(sandbox_server.base_url, tmp_path_factory.mktemp("oauth-state"))
    try:
        yield running
    finally:
        stop(running)


def new_client(server: OAuthServer, **metadata) -> str:
    r = register(server.base, **metadata)
    assert r.status_code == 201, r.text
    return r.json()["client_id"]


def tokens_for(server: OAuthServer, access_code: str = ALICE) -> tuple[Authorization, dict]:
    flow = Authorization(server.base, new_client(server))
    code = flow.approve(access_code)
    r = flow.exchange(code)
    assert r.status_code == 200, r.text
    return flow, r.json()


def bearer_client(server: OAuthServer, token: str) -> Client:
    hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(f"{server.base}/mcp", http_client=hc), mode="legacy")


# -- the SDK's own OAuth client --------------------------------------------------------------------


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


async def test_sdk_oauth_client_registers_authorizes_refreshes_and_calls_tools(server) -> None:
    storage = MemoryStorage()
    redirect = "http://127.0.0.1:9/callback"
    result: dict[str, AuthorizationCodeResult] = {}
    consent_pages: list[str] = []

    async def redirect_handler(authorization_url: str) -> None:
        # A person's browser: /authorize -> the consent page -> type the access code -> approve.
        async with httpx.AsyncClient(timeout=10) as browser:
            r = await browser.get(authorization_url)
            assert r.status_code == 302 and r.headers["location"].startswith(f"{server.base}/consent?")
            page = await browser.get(r.headers["location"])
            consent_pages.append(page.text)
            form = parse_consent(page.text)
            form.check_contract()
            r = await browser.post(f"{server.base}/consent",
                                   data={**form.hidden, "access_code": ALICE, "decision": "approve"})
            assert r.status_code == 302 and r.headers["location"].startswith(redirect + "?")
            params = query(r.headers["location"])
            result["code"] = AuthorizationCodeResult(code=params["code"], state=params.get("state"))

    async def callback_handler() -> AuthorizationCodeResult:
        return result.pop("code")

    auth = OAuthClientProvider(
        f"{server.base}/mcp",
        OAuthClientMetadata(client_name="SDK connector", redirect_uris=[redirect]),  # confidential (secret_post)
        storage, redirect_handler=redirect_handler, callback_handler=callback_handler,
    )
    async with Client(streamable_http_client(f"{server.base}/mcp", http_client=httpx2.AsyncClient(auth=auth)),
                      mode="legacy") as client:
        started = await client.call_tool("start_interview", {"respondent": {"external_id": "oauth-1"}})
        listed = await client.call_tool("list_interviews", {})
    assert not started.is_error, started.content
    iid = started.structured_content["interview_id"]
    assert [i["interview_id"] for i in listed.structured_content["interviews"]] == [iid]
    assert len(consent_pages) == 1 and "SDK connector" in consent_pages[0] and "127.0.0.1:9" in consent_pages[0]
    assert storage.client is not None and storage.client.client_secret is None  # registered as a public client
    assert storage.client.token_endpoint_auth_method == "none"
    assert storage.client.scope == SCOPES  # no scope sent: both by default
    first = storage.tokens
    assert first is not None and first.refresh_token and first.expires_in == 3600 and first.scope == SCOPES
    assert len(first.access_token) >= 43  # 256 random bits, URL-safe base64

    auth.context.token_expiry_time = time.time() - 1  # as if an hour had passed: the client must refresh
    async with Client(streamable_http_client(f"{server.base}/mcp", http_client=httpx2.AsyncClient(auth=auth)),
                      mode="legacy") as client:
        again = await client.call_tool("get_interview", {"interview_id": iid})
    assert not again.is_error
    second = storage.tokens
    assert second.access_token != first.access_token and second.refresh_token != first.refresh_token  # rotated
    assert not consent_pages[1:]  # refreshed, not re-authorized
    assert mcp_status(server.base, first.access_token) == 401  # the rotated-out access token is dead
    assert mcp_status(server.base, second.access_token) == 200

    # The grant is bound to alice: her static token sees the same interview (one owner, two ways in).
    async with bearer_client(server, ALICE) as client:
        mine = await client.call_tool("list_interviews", {"external_id": "oauth-1"})
    assert [i["interview_id"] for i in mine.structured_content["interviews"]] == [iid]
    # Nothing secret is stored in plain: only hashes of codes and tokens.
    with sqlite3.connect(server.state / "ledger.sqlite3") as db:
        dump = "\n".join(db.iterdump())
    for secret in (first.access_token, first.refresh_token, second.access_token, second.refresh_token, ALICE):
        assert secret not in dump


# -- metadata and the consent page ------------------------------------------------------------------


def test_metadata_names_this_server(server) -> None:
    meta = httpx.get(f"{server.base}/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == server.base
    assert meta["authorization_endpoint"] == f"{server.base}/authorize"
    assert meta["token_endpoint"] == f"{server.base}/token"
    assert meta["registration_endpoint"] == f"{server.base}/register"
    assert meta["revocation_endpoint"] == f"{server.base}/revoke"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["scopes_supported"] == SCOPES.split()
    prm = httpx.get(f"{server.base}/.well-known/oauth-protected-resource/mcp").json()
    assert prm["resource"] == f"{server.base}/mcp" and prm["authorization_servers"] == [server.base]
    r = httpx.post(f"{server.base}/mcp", json={})
    assert r.status_code == 401
    assert f'resource_metadata="{server.base}/.well-known/oauth-protected-resource/mcp"' in r.headers[
        "www-authenticate"]


def test_consent_page_escapes_the_client_name_and_shows_the_redirect_host(server) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    flow = Authorization(server.base, new_client(server, client_name=evil,
                                                 redirect_uris=["https://evil.example/cb"]),
                         redirect_uri="https://evil.example/cb")
    page = flow.open_consent()
    assert "<script>" not in page.text and "<img" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
    assert "evil.example" in " ".join(flow.form.text)
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
    assert "koji_consent_csrf=" in page.headers["set-cookie"] and "httponly" in page.headers["set-cookie"].lower()


def test_wrong_code_401_then_right_code_302_and_single_use_code(server) -> None:
    flow = Authorization(server.base, new_client(server))
    flow.open_consent()
    wrong = flow.submit("approve", "not-the-code-0123456789")
    assert wrong.status_code == 401
    again = parse_consent(wrong.text)
    again.check_contract()  # the page again, same request, with an error
    assert again.hidden == flow.form.hidden and "That access code is not right." in wrong.text
    code = flow.approve(BOB)
    r = flow.exchange(code)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == SCOPES
    assert mcp_status(server.base, body["access_token"]) == 200
    # The same code again: invalid_grant, and everything issued from it is revoked.
    replay = flow.exchange(code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert mcp_status(server.base, body["access_token"]) == 401
    assert refresh(server.base, flow.client_id, body["refresh_token"]).json()["error"] == "invalid_grant"
    # The consent request itself is single-use too.
    assert flow.submit("approve", BOB).status_code == 400


def test_deny_redirects_with_access_denied(server) -> None:
    flow = Authorization(server.base, new_client(server))
    flow.open_consent()
    r = flow.submit("deny")
    assert r.status_code == 302
    params = query(r.headers["location"])
    assert r.headers["location"].startswith(flow.redirect_uri + "?")
    assert params["error"] == "access_denied" and params["state"] == flow.state and "code" not in params


def test_consent_post_needs_the_pages_csrf_token_and_a_cookie_if_sent_must_match(server) -> None:
    flow = Authorization(server.base, new_client(server))
    flow.open_consent()
    data = {**flow.form.hidden, "access_code": ALICE, "decision": "approve"}
    forged = flow.http.post(f"{server.base}/consent", data={**data, "csrf_token": "forged"})
    assert forged.status_code == 403
    wrong_cookie = httpx.post(f"{server.base}/consent", data=data, cookies={"koji_consent_csrf": "other"})
    assert wrong_cookie.status_code == 403
    no_cookie = httpx.post(f"{server.base}/consent", data=data)  # a client without a cookie jar
    assert no_cookie.status_code == 302 and "code=" in no_cookie.headers["location"]


# -- bad input gets RFC errors and changes nothing --------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://example.com/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://ok.example/cb#frag"]}, "invalid_redirect_uri"),
        ({"redirect_uris": [f"https://ok.example/{i}" for i in range(11)]}, "invalid_redirect_uri"),
        ({"client_name": "x" * 5000}, "invalid_client_metadata"),
        ({"contacts": ["a@example.com"] * 2000}, "invalid_client_metadata"),
        ({"scope": "interviews:read admin"}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "invalid_client_metadata"),
    ],
)
def test_bad_registrations_get_rfc7591_errors(server, metadata, error) -> None:
    before = server.clients_in_db()
    r = register(server.base, **metadata)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error
    assert server.clients_in_db() == before


@pytest.mark.parametrize("extra", [{"client_name": "x" * (5 * 1024 * 1024)}, {"unknown_field": "y" * 300_000}])
def test_huge_registration_metadata_gets_an_rfc_error(server, extra) -> None:
    before = server.clients_in_db()
    r = register(server.base, **extra)
    assert r.status_code == 400 and r.json()["error"] == "invalid_client_metadata"
    assert server.clients_in_db() == before


def test_registration_without_scope_gets_both_and_loopback_http_is_allowed(server) -> None:
    r = register(server.base, redirect_uris=["http://localhost:33418/cb", "http://[::1]:7/cb",
                                             "https://chatgpt.com/connector_platform_oauth_redirect"])
    assert r.status_code == 201 and r.json()["scope"] == SCOPES


@pytest.mark.parametrize("pkce_params", [{"code_challenge": None, "code_challenge_method": None},
                                         {"code_challenge_method": "plain"}])
def test_pkce_missing_or_plain_is_refused(server, pkce_params) -> None:
    flow = Authorization(server.base, new_client(server))
    r = flow.start(**pkce_params)
    assert r.status_code == 302
    params = query(r.headers["location"])
    assert r.headers["location"].startswith(flow.redirect_uri + "?")
    assert params["error"] == "invalid_request" and params["state"] == flow.state


def test_authorize_refuses_unregistered_redirect_and_foreign_resource(server) -> None:
    flow = Authorization(server.base, new_client(server))
    r = flow.start(redirect_uri="http://127.0.0.1:9/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"  # never redirected anywhere
    r = flow.start(resource="https://other.example/mcp")
    assert r.status_code == 302 and query(r.headers["location"])["error"] == "invalid_target"
    assert flow.open_consent(resource=f"{server.base}/mcp").status_code == 200


def test_wrong_redirect_uri_or_verifier_at_token(server) -> None:
    flow = Authorization(server.base, new_client(server, redirect_uris=["http://127.0.0.1:9/callback",
                                                                         "http://127.0.0.1:9/other"]))
    code = flow.approve(ALICE)
    r = flow.exchange(code, redirect_uri="http://127.0.0.1:9/other")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # RFC 6749 §5.2 (the SDK says invalid_request)
    r = flow.exchange(code, code_verifier="x" * 50)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert flow.exchange(code).status_code == 200


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(server) -> None:
    flow, first = tokens_for(server)
    r = refresh(server.base, flow.client_id, first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"] and second["scope"] == SCOPES
    assert mcp_status(server.base, first["access_token"]) == 401
    assert mcp_status(server.base, second["access_token"]) == 200
    replay = refresh(server.base, flow.client_id, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert mcp_status(server.base, second["access_token"]) == 401
    assert refresh(server.base, flow.client_id, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_token_of_another_client_is_refused(server) -> None:
    _, tokens = tokens_for(server)
    other = new_client(server)
    r = refresh(server.base, other, tokens["refresh_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    assert mcp_status(server.base, tokens["access_token"]) == 200  # a stranger's attempt revokes nothing


@pytest.mark.parametrize("which", ["access_token", "refresh_token"])
def test_revoke_ends_the_grant(server, which) -> None:
    flow, tokens = tokens_for(server)
    r = httpx.post(f"{server.base}/revoke", data={"token": tokens[which], "client_id": flow.client_id})
    # The SDK's revocation handler requires the client_secret field even from public clients.
    assert r.status_code == 400 and "client_secret" in r.json()["error_description"]
    r = httpx.post(f"{server.base}/revoke",
                   data={"token": tokens[which], "client_id": flow.client_id, "client_secret": ""})
    assert r.status_code == 200
    assert mcp_status(server.base, tokens["access_token"]) == 401
    assert refresh(server.base, flow.client_id, tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_static_tokens_still_work_beside_oauth(server) -> None:
    assert mcp_status(server.base, ALICE) == 200
    assert mcp_status(server.base, "alice-token-0123456789abcdeX") == 401


# -- isolation ----------------------------------------------------------------------------------------


async def test_an_oauth_grant_for_bob_never_sees_alices_interviews(server) -> None:
    async with bearer_client(server, ALICE) as alice:
        started = await alice.call_tool("start_interview", {"respondent": {"external_id": "iso-a"}})
        iid = started.structured_content["interview_id"]
    _, tokens = tokens_for(server, access_code=BOB)
    async with bearer_client(server, tokens["access_token"]) as bob:
        listed = await bob.call_tool("list_interviews", {})
        read = await bob.call_tool("get_interview", {"interview_id": iid})
        send = await bob.call_tool("send_interview_message", {"interview_id": iid, "content": "hijack"})
        complete = await bob.call_tool("complete_interview", {"interview_id": iid})
        with pytest.raises(Exception, match=f"unknown interview {iid}"):
            await bob.read_resource(f"koji://interviews/{iid}")
        own = await bob.call_tool("start_interview", {"respondent": {"external_id": "iso-b"}})
    assert iid not in {i["interview_id"] for i in listed.structured_content["interviews"]}
    assert read.is_error
    for result in (send, complete):
        assert result.is_error and result.content[0].text.startswith(f"Unknown interview_id '{iid}'")
    with sqlite3.connect(server.state / "ledger.sqlite3") as db:
        owners = dict(db.execute("SELECT external_id, owner FROM interviews WHERE external_id LIKE 'iso-%'"))
    assert owners == {"iso-a": "alice", "iso-b": "bob"}
    assert own.structured_content["interview_id"] != iid


# -- state that needs a fresh server -----------------------------------------------------------------


def test_more_than_five_wrong_codes_a_minute_get_429_and_grants_survive_a_restart(sandbox_server, tmp_path) -> None:
    fresh = start_server(sandbox_server.base_url, tmp_path)
    try:
        flow, tokens = tokens_for(fresh)
        flow = Authorization(fresh.base, flow.client_id)
        flow.open_consent()
        assert [flow.submit("approve", f"wrong-{i}-0123456789abcdef").status_code for i in range(5)] == [401] * 5
        limited = flow.submit("approve", ALICE)  # even the right code, until the minute is over
        assert limited.status_code == 429 and limited.headers["retry-after"] == "60"
        port = fresh.port
    finally:
        stop(fresh)
    restarted = start_server(sandbox_server.base_url, tmp_path, port)
    try:
        assert mcp_status(restarted.base, tokens["access_token"]) == 200  # clients and tokens are in the ledger
        r = refresh(restarted.base, flow.client_id, tokens["refresh_token"])
        assert r.status_code == 200
    finally:
        stop(restarted)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--transport", "streamable-http", "--oauth"], {},
         "koji-mcp: --oauth needs client tokens: set KOJI_MCP_AUTH_TOKEN=name=token"),
        (["--oauth", "--auth-token", f"a={ALICE}"], {}, "koji-mcp: --oauth applies to the HTTP transports"),
        (["--transport", "streamable-http", "--host", "0.0.0.0", "--auth-token", f"a={ALICE}"],
         {"KOJI_MCP_OAUTH": "builtin"}, "koji-mcp: refusing OAuth at http://0.0.0.0:8000: bearer tokens must travel over https"),
        (["--transport", "streamable-http"], {"KOJI_MCP_OAUTH": "maybe"},
         "koji-mcp: KOJI_MCP_OAUTH must be 'builtin' or 'off' (got 'maybe')"),
    ],
)
def test_bad_oauth_setups_exit_2_with_one_line(args, env, message, tmp_path) -> None:
    proc = subprocess.run([*koji_mcp_command(), "serve", "--sandbox", "--state-dir", str(tmp_path), *args],
                          env=subprocess_env(KOJI_MCP_AUTH_TOKEN="", **env), capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(message) and proc.stderr.count("\n") == 1, proc.stderr


def test_a_grant_ends_when_its_team_token_is_removed(sandbox_server, tmp_path) -> None:
    """Removing bob from KOJI_MCP_AUTH_TOKEN ends his OAuth connectors too (access and refresh)."""
    first = start_server(sandbox_server.base_url, tmp_path)
    try:
        flow, tokens = tokens_for(first, BOB)
        assert mcp_status(first.base, tokens["access_token"]) == 200
        port = first.port
    finally:
        stop(first)
    without_bob = start_server(sandbox_server.base_url, tmp_path, port, tokens=f"alice={ALICE}")
    try:
        assert mcp_status(without_bob.base, tokens["access_token"]) == 401
        assert refresh(without_bob.base, flow.client_id, tokens["refresh_token"]).status_code == 400
    finally:
        stop(without_bob)


def test_clients_are_public_and_no_secret_is_stored(server) -> None:
    r = httpx.post(f"{server.base}/register", json={
        "client_name": "Wants a secret", "redirect_uris": ["http://127.0.0.1:9/callback"],
        "token_endpoint_auth_method": "client_secret_post", "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["token_endpoint_auth_method"] == "none" and "client_secret" not in body
    with sqlite3.connect(server.state / "ledger.sqlite3") as db:
        stored = [row[0] for row in db.execute("SELECT info FROM oauth_clients")]
    assert stored and not any("client_secret" in info for info in stored)
    flow = Authorization(server.base, body["client_id"])
    assert flow.exchange(flow.approve(ALICE)).status_code == 200  # PKCE alone authenticates the exchange


def test_replicas_on_one_database_share_clients_grants_and_token_rotation(sandbox_server, tmp_path, postgres_url) -> None:
    """Two built-in OAuth servers (replicas behind one public URL) on one PostgreSQL database: a connector
    registered and approved on one works on the other; a refresh rotated on one is spent for both; the
    consent request begun on one is answered on the other (each step may reach another replica)."""
    port = free_port()
    public = f"http://127.0.0.1:{port}"  # both replicas name one public URL (in production: the proxy's)
    one = start_server(sandbox_server.base_url, tmp_path / "one", port, "--public-url", public, database_url=postgres_url)
    two = start_server(sandbox_server.base_url, tmp_path / "two", None, "--public-url", public, database_url=postgres_url)
    try:
        began = Authorization(one.base, new_client(one))
        page = began.open_consent()  # /authorize and the page on one ...
        began.base = two.base
        approved = began.submit("approve", ALICE)  # ... the form's answer, and the code's exchange, on two
        assert page.status_code == 200 and approved.status_code == 302, approved.text
        assert began.exchange(query(approved.headers["location"])["code"]).status_code == 200
        assert began.submit("approve", ALICE).status_code == 400  # answered once: gone on every replica
        flow, tokens = tokens_for(one)
        assert mcp_status(two.base, tokens["access_token"]) == 200  # issued by one, accepted by two
        rotated = refresh(two.base, flow.client_id, tokens["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        replay = refresh(one.base, flow.client_id, tokens["refresh_token"])  # the old refresh token, elsewhere
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert mcp_status(one.base, rotated.json()["access_token"]) == 401  # the replay revoked the grant everywhere
        assert not (tmp_path / "one" / "ledger.sqlite3").exists() and not (tmp_path / "two" / "ledger.sqlite3").exists()
    finally:
        stop(one)
        stop(two)
    for server in (one, two):
        err = server.proc.stderr.read()
        assert postgres_url.split(":")[2].split("@")[0] not in err, err  # the database password never shows
