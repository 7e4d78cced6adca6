"""External OAuth issuer mode, end to end: our own issuer, a real koji-mcp over HTTP, a real MCP client.

The test runs a tiny issuer (OpenID discovery document + JWKS, keys minted here with
`cryptography`) on a loopback port, starts `koji-mcp serve --oauth-issuer` as a subprocess against
the sandbox, and talks to it with the SDK's client carrying the bearer header. Every forged token
is built byte by byte where PyJWT would refuse to build it (`alg: none`, HS256 keyed with the
public key), so the server's refusal is what is tested.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env
from tests.e2e.test_http import free_port, wait_for_port

pytestmark = pytest.mark.anyio
ALICE = "alice-token-0123456789abcdef"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
READ_TOOLS = {"get_interview", "list_interviews", "search", "fetch", "get_batch"}
WRITE_TOOLS = {"start_interview", "start_interviews", "send_interview_message", "complete_interview", "cancel_batch"}
BOTH = "interviews:read interviews:write"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An OAuth issuer in a thread: /.well-known/openid-configuration and /jwks (RFC 8414 path: 404)."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key, published in the JWKS
        self.jwks_hits = 0
        self.metadata_issuer: str | None = None  # override to publish a wrong issuer
        self.down = False  # answer 503 to everything
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if issuer.down:
                    self.send_error(503)
                    return
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.metadata_issuer or issuer.url, "jwks_uri": f"{issuer.url}/jwks",
                            "authorization_endpoint": f"{issuer.url}/authorize", "token_endpoint": f"{issuer.url}/token"}
                elif self.path == "/jwks":
                    issuer.jwks_hits += 1
                    body = {"keys": [issuer.public_jwk(kid, key) for kid, key in issuer.keys.items()]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def public_jwk(kid: str, key: Any) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
        jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "use": "sig"}

    def add_rsa(self, kid: str) -> Any:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def add_ec(self, kid: str) -> Any:
        self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        return self.keys[kid]

    def claims(self, resource: str, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "aud": resource, "sub": "user-42", "iat": now, "exp": now + 300, "scope": BOTH}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(self, resource: str, *, kid: str = "k1", key: Any = None, **overrides: Any) -> str:
        key = key or self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(self.claims(resource, **overrides), key, algorithm=alg, headers={"kid": kid})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    issuer.add_rsa("k1")
    issuer.add_ec("e1")
    issuer.thread.start()
    yield issuer
    issuer.server.shutdown()


@pytest.fixture(scope="module")
def server(issuer: Issuer, sandbox_server, tmp_path_factory) -> Iterator[tuple[str, Any]]:
    """koji-mcp with the external issuer and one static client token; yields (base URL, state dir)."""
    state = tmp_path_factory.mktemp("state")
    port = free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox_server.base_url, KOJI_MCP_STATE_DIR=str(state),
                         KOJI_MCP_OAUTH_ISSUER=issuer.url, KOJI_MCP_AUTH_TOKEN=f"alice={ALICE}")
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--transport", "streamable-http", "--port", str(port)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", state
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
        assert "rejected an access token: Signature has expired" in err  # the reasons are logged…
        assert "eyJ" not in err and ALICE not in err  # …never a token (every JWT starts with eyJ)


def as_client(base: str, token: str) -> Client:
    hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return Client(streamable_http_client(f"{base}/mcp", http_client=hc), mode="legacy")


def oauth_challenge(base: str, *, has_credentials: bool) -> str:
    description = ("Invalid or expired token: sign in again with OAuth (see resource_metadata)" if has_credentials
                   else "Authentication required: sign in with OAuth (see resource_metadata) "
                   "or send Authorization: Bearer <token>")
    return (f'Bearer error="invalid_token", error_description="{description}", scope="{BOTH}", '
            f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"')


def post_init(base: str, token: str | None) -> httpx.Response:
    headers = {**HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.post(f"{base}/mcp", json=INIT, headers=headers, timeout=30)


async def test_good_token_works_and_the_owner_is_the_subject(server, issuer, sandbox) -> None:
    base, state = server
    resource = f"{base}/mcp"
    async with as_client(base, issuer.mint(resource)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        started = await client.call_tool("start_interview", {"respondent": {"external_id": "oauth-1"}})
        listed = await client.call_tool("list_interviews", {})
    assert tools == READ_TOOLS | WRITE_TOOLS
    assert not started.is_error, started.content[0].text
    iid = started.structured_content["interview_id"]
    assert [i["interview_id"] for i in listed.structured_content["interviews"]] == [iid]
    # ES256 works too, and `scp` as a list (Okta/Entra style) is read like `scope`
    async with as_client(base, issuer.mint(resource, kid="e1", scope=None, scp=["interviews:read"])) as client:
        mine = await client.call_tool("list_interviews", {})
    assert [i["interview_id"] for i in mine.structured_content["interviews"]] == [iid]
    # another subject of the same issuer, and a static client, see none of user-42's interviews
    async with as_client(base, issuer.mint(resource, sub="user-43")) as other:
        theirs = await other.call_tool("list_interviews", {})
    async with as_client(base, ALICE) as alice:
        alices = await alice.call_tool("list_interviews", {})
        alice_tools = {t.name for t in (await alice.list_tools()).tools}
    assert theirs.structured_content["interviews"] == [] and alices.structured_content["interviews"] == []
    assert alice_tools == READ_TOOLS | WRITE_TOOLS  # static tokens hold both scopes
    db = sqlite3.connect(state / "ledger.sqlite3")
    assert db.execute("SELECT owner FROM interviews WHERE interview_id = ?", (iid,)).fetchall() == [("idp:user-42",)]
    # Koji only ever sees the server's key
    assert {r["headers"]["authorization"] for r in sandbox.requests()} == {f"Bearer {DEMO_KEY}"}


def test_metadata_names_the_issuer_and_both_scopes(server, issuer) -> None:
    base, _ = server
    r = httpx.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    assert r.status_code == 200
    assert r.json() == {"resource": f"{base}/mcp", "authorization_servers": [issuer.url],
                        "scopes_supported": ["interviews:read", "interviews:write"],
                        "bearer_methods_supported": ["header"], "resource_name": "koji-mcp"}
    # no authorization-server endpoints of our own: the issuer is the authorization server
    for path in ("/.well-known/oauth-authorization-server", "/register", "/authorize", "/token"):
        assert httpx.get(f"{base}{path}").status_code in (404, 405), path


def test_missing_token_gets_the_oauth_challenge(server) -> None:
    base, _ = server
    r = post_init(base, None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == oauth_challenge(base, has_credentials=False)
    assert r.json()["error"] == "invalid_token"


def forged(header: dict[str, Any], claims: dict[str, Any], sign: Any = None) -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode())) if sign else ''}"


def test_bad_tokens_are_refused(server, issuer) -> None:
    base, _ = server
    resource = f"{base}/mcp"
    public_pem = issuer.keys["k1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    bad = {
        "expired": issuer.mint(resource, exp=now - 120, iat=now - 600),
        "not yet valid": issuer.mint(resource, nbf=now + 600),
        "wrong aud": issuer.mint(resource, aud="https://other.example.com/mcp"),
        "aud of a sibling path": issuer.mint(resource, aud=f"{base}/mcp-admin"),
        "wrong iss": issuer.mint(resource, iss="https://evil.example.com"),
        "no exp": issuer.mint(resource, exp=None),
        "no sub": issuer.mint(resource, sub=None),
        "alg none": forged({"alg": "none", "typ": "JWT", "kid": "k1"}, issuer.claims(resource)),
        "hs256 keyed with the public key": forged(
            {"alg": "HS256", "typ": "JWT", "kid": "k1"}, issuer.claims(resource),
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()),
        "signed by a stranger under a known kid": issuer.mint(resource, kid="k1", key=stranger),
        "rs384": jwt.encode(issuer.claims(resource), issuer.keys["k1"], algorithm="RS384", headers={"kid": "k1"}),
        "not a jwt": "x" * 40,
    }
    for name, token in bad.items():
        r = post_init(base, token)
        assert r.status_code == 401, name
        assert r.headers["www-authenticate"] == oauth_challenge(base, has_credentials=True), name
    assert post_init(base, issuer.mint(resource)).status_code == 200  # the control
    assert post_init(base, issuer.mint(resource, exp=now - 10)).status_code == 200  # within the 30 s leeway
    assert post_init(base, issuer.mint(resource, aud=["https://other.example.com", resource])).status_code == 200


def test_token_without_koji_scopes_gets_403_insufficient_scope(server, issuer) -> None:
    base, _ = server
    r = post_init(base, issuer.mint(f"{base}/mcp", scope="openid profile"))
    assert r.status_code == 403
    assert r.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", error_description="This access token lacks the scope interviews:read, '
        f'which every request needs", scope="{BOTH}", '
        f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"')


async def test_read_only_token_sees_read_tools_and_write_calls_are_refused(server, issuer, sandbox) -> None:
    base, _ = server
    async with as_client(base, issuer.mint(f"{base}/mcp", scope="interviews:read", sub="reader")) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        refused = {name: await client.call_tool(name, args) for name, args in {
            "start_interview": {},
            "start_interviews": {"respondents": [{"external_id": "r-1"}], "dry_run": True},
            "send_interview_message": {"interview_id": "int_0123456789", "content": "hi"},
            "complete_interview": {"interview_id": "int_0123456789"},
        }.items()}
        listed = await client.call_tool("list_interviews", {})
    assert tools == READ_TOOLS
    for name, result in refused.items():
        assert result.is_error and result.structured_content is None
        assert result.content[0].text == (
            f"{name}: This needs the OAuth scope 'interviews:write', which this access token was not granted "
            "(granted: interviews:read). Nothing was sent to Koji. Reconnect koji-mcp and allow "
            "'interviews:write' to use it.")
    assert not listed.is_error
    assert sandbox.requests() == []  # nothing reached Koji


async def test_rotated_key_is_fetched_once_and_made_up_kids_do_not_refetch(server, issuer) -> None:
    base, _ = server
    resource = f"{base}/mcp"
    issuer.add_rsa("k2")  # the issuer rotates: a new key appears in its JWKS
    hits = issuer.jwks_hits
    async with as_client(base, issuer.mint(resource, kid="k2", sub="rotated")) as client:
        result = await client.call_tool("list_interviews", {})
    assert not result.is_error
    assert issuer.jwks_hits == hits + 1
    # a flood of unknown kids right after costs the issuer nothing more
    stray = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for n in range(5):
        assert post_init(base, issuer.mint(resource, kid=f"made-up-{n}", key=stray)).status_code == 401
    assert issuer.jwks_hits == hits + 1
    assert post_init(base, issuer.mint(resource, kid="k1")).status_code == 200  # older key still published


# -- startup rules -------------------------------------------------------------------------------

def run_serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*koji_mcp_command(), "serve", "--sandbox", *args], capture_output=True, text=True,
                          env=subprocess_env(**env), timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--transport", "streamable-http", "--host", "0.0.0.0", "--oauth-issuer", "https://idp.example.com"], {},
         "koji-mcp: refusing OAuth at http://0.0.0.0:8000: bearer tokens must travel over https"),
        (["--transport", "streamable-http", "--public-url", "http://mcp.example.com"],
         {"KOJI_MCP_OAUTH_ISSUER": "https://idp.example.com"},
         "koji-mcp: refusing OAuth at http://mcp.example.com: bearer tokens must travel over https"),
        (["--transport", "streamable-http", "--oauth-issuer", "http://idp.example.com"], {},
         "koji-mcp: KOJI_MCP_OAUTH_ISSUER must use https://"),
        (["--oauth-issuer", "https://idp.example.com"], {},
         "koji-mcp: KOJI_MCP_OAUTH_ISSUER applies to the HTTP transports"),
        (["--transport", "streamable-http", "--public-url", "https://mcp.example.com/mcp"], {},
         "koji-mcp: --public-url is the server's origin without a path"),
        (["--transport", "streamable-http"], {"KOJI_MCP_AUTH_TOKEN": f"local={ALICE}"},
         "koji-mcp: auth token #1: the client name 'local' is reserved for the stdio/CLI user"),
        (["--transport", "streamable-http", "--auth-token", f"LOCAL={ALICE}"], {},
         "koji-mcp: auth token #1: the client name 'LOCAL' is reserved for the stdio/CLI user"),
    ],
)
def test_unsafe_or_wrong_oauth_setups_are_refused(args, env, message, tmp_path) -> None:
    proc = run_serve(*args, KOJI_MCP_STATE_DIR=str(tmp_path), **env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(message) and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_an_issuer_whose_metadata_names_another_issuer_is_refused(issuer, tmp_path) -> None:
    issuer.metadata_issuer = issuer.url + "/"  # e.g. Auth0 publishes its issuer with a trailing slash
    try:
        proc = run_serve("--transport", "streamable-http", "--port", str(free_port()), "--oauth-issuer", issuer.url,
                         KOJI_MCP_STATE_DIR=str(tmp_path))
    finally:
        issuer.metadata_issuer = None
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"koji-mcp: OAuth issuer: the metadata at {issuer.url}/.well-known/openid-configuration names the issuer "
        f"'{issuer.url}/', not '{issuer.url}': set KOJI_MCP_OAUTH_ISSUER to exactly the issuer your identity "
        "provider publishes")


def test_https_public_url_on_a_public_bind_starts(issuer, tmp_path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*koji_mcp_command(), "serve", "--sandbox", "--transport", "streamable-http", "--host", "0.0.0.0",
         "--port", str(port), "--oauth-issuer", issuer.url, "--public-url", "https://mcp.example.com"],
        env=subprocess_env(KOJI_MCP_STATE_DIR=str(tmp_path)), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)
        meta = httpx.get(f"http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp").json()
        assert meta["resource"] == "https://mcp.example.com/mcp"
        token = issuer.mint("https://mcp.example.com/mcp")
        assert post_init(f"http://127.0.0.1:{port}", token).status_code == 200  # aud = the public resource URL
        assert post_init(f"http://127.0.0.1:{port}", issuer.mint(f"http://127.0.0.1:{port}/mcp")).status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)


async def test_withdrawn_keys_stop_working_and_an_issuer_down_at_start_is_retried(monkeypatch) -> None:
    """In-process verifier against its own issuer: keys age out, and startup survives an unreachable issuer."""
    from koji_mcp.server import jwt_auth

    own = Issuer()
    own.add_rsa("k1")
    own.add_rsa("k2")
    own.thread.start()
    resource = "http://127.0.0.1:9/mcp"
    verifier = jwt_auth.JWTVerifier(own.url, resource)
    try:
        own.down = True
        await verifier.warm_up()  # 503 at startup: a warning, no exception
        own.down = False
        token = own.mint(resource)
        accepted = await verifier.verify_token(token)  # the first token makes it fetch
        assert accepted is not None and accepted.client_id == "idp:user-42" and accepted.scopes == BOTH.split()
        assert accepted.resource == resource and accepted.subject == "idp:user-42" and own.jwks_hits == 1
        own.keys.pop("k1")  # the issuer withdraws a key
        assert await verifier.verify_token(token) is not None  # cached keys are used while fresh…
        monkeypatch.setattr(jwt_auth, "KEYS_MAX_AGE", 0.0)
        monkeypatch.setattr(jwt_auth, "MIN_REFRESH_SECONDS", 0.0)
        assert await verifier.verify_token(token) is None  # …and refetched once old: k1 is gone
        assert await verifier.verify_token(own.mint(resource, kid="k2")) is not None
        own.down = True  # an unreachable issuer does not lock everyone out: the last keys stay
        assert await verifier.verify_token(own.mint(resource, kid="k2")) is not None
        own.down = False
        k2 = own.keys.pop("k2")  # an issuer that answers with no keys at all: nothing is trusted any more
        assert await verifier.verify_token(own.mint(resource, kid="k2", key=k2)) is None
    finally:
        own.server.shutdown()


async def test_the_owner_claim_is_configurable(issuer) -> None:
    from koji_mcp.server.jwt_auth import JWTVerifier

    resource = "https://mcp.example.com/mcp"
    verifier = JWTVerifier(issuer.url, resource, owner_claim="email")
    await verifier.warm_up()
    found = await verifier.verify_token(issuer.mint(resource, email="jane@example.com"))
    assert found is not None and found.client_id == "idp:jane@example.com"
    assert await verifier.verify_token(issuer.mint(resource)) is None  # no email claim: nobody to own interviews
    assert await verifier.verify_token(issuer.mint(resource, email="a\nb")) is None  # not a printable name
