"""The built-in OAuth 2.1 authorization server (`serve --oauth`), for teams without an identity provider.

The SDK serves the protocol (RFC 8414 metadata, /authorize, /token, /register, /revoke, RFC 9728
metadata) and calls this provider; this module adds what the SDK leaves to us: who may approve a
grant. Approval happens on a consent page served here, where a person types an *access code*: one
of the team's static client tokens (`KOJI_MCP_AUTH_TOKEN`, `name=token`). The grant is bound to that
client name, which becomes the ledger owner, so a person's interviews are the same whether they
connect from Cursor with the static token or from ChatGPT through OAuth.

Rules kept here: redirect URIs are https, or http on loopback only, matched exactly; PKCE S256 only
(the SDK refuses anything else); codes are single-use and live 5 minutes, and a replayed code
revokes everything issued from it; refresh tokens rotate and a replayed one revokes the grant;
codes and tokens are random 256-bit strings stored only as SHA-256 hashes (oauth_store.py).
"""

from __future__ import annotations

import hmac
import json
import html
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    RefreshToken,
    RegistrationError,
    TokenError,
    construct_redirect_uri,
)
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from pydantic import AnyUrl
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from koji_mcp.config import is_loopback
from koji_mcp.server.auth import ClientToken, StaticTokenVerifier
from koji_mcp.server.scopes import ALL_SCOPES, READ_SCOPE, WRITE_SCOPE
from koji_mcp.server.oauth_store import Grant, OAuthStore

logger = logging.getLogger(__name__)

CONSENT_PATH = "/consent"
CSRF_COOKIE = "koji_consent_csrf"
PENDING_SECONDS = 600  # a consent page left open longer must be started again
MAX_PENDING = 1000
WRONG_CODES_PER_MINUTE = 5
WRONG_CODES_PER_MINUTE_ALL = 100  # from every address together: a spread-out guesser is slowed too
# Registration limits: anything larger is refused with invalid_client_metadata.
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_NAME_LENGTH = 200
MAX_METADATA_BYTES = 16 * 1024

SCOPE_TEXT = {
    READ_SCOPE: "read your interviews, their transcripts and analysis",
    WRITE_SCOPE: "start interviews (spends Koji credits), relay messages and complete interviews",
}


def builtin_auth_settings(issuer: str, resource: str) -> AuthSettings:
    """The SDK settings for the built-in server: DCR on (default scopes: both), revocation on."""
    return AuthSettings(
        issuer_url=issuer,  # type: ignore[arg-type]
        resource_server_url=resource,  # type: ignore[arg-type]
        required_scopes=[READ_SCOPE],  # a read-only grant gets in; write tools check interviews:write
        client_registration_options=ClientRegistrationOptions(
            enabled=True, valid_scopes=list(ALL_SCOPES), default_scopes=list(ALL_SCOPES)
        ),
        revocation_options=RevocationOptions(enabled=True),
        validate_token_resource=True,  # every token we accept names this server's /mcp URL
    )


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI is refused, or None: https anywhere, http only on loopback; no fragment."""
    if len(uri) > MAX_URI_LENGTH:
        return f"redirect URI longer than {MAX_URI_LENGTH} characters"
    parsed = urlparse(uri)
    if parsed.fragment:
        return "redirect URIs must not have a fragment"
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and parsed.hostname and is_loopback(parsed.hostname):
        return None
    return f"redirect URI {uri[:100]!r} must be https://, or http:// on a loopback address"


@dataclass
class Pending:
    """An /authorize request waiting for a person on the consent page (in memory, 10 minutes)."""

    client_id: str
    client_name: str
    redirect_uri: str
    redirect_given: bool
    state: str | None
    code_challenge: str
    scopes: list[str]
    resource: str | None
    csrf: str
    expires_at: float


class BuiltinOAuthProvider:
    """`OAuthAuthorizationServerProvider` for `serve --oauth`, plus the consent page's logic."""

    def __init__(self, store: OAuthStore, tokens: list[ClientToken], *, issuer: str, resource: str) -> None:
        self.store = store
        self.static = StaticTokenVerifier(tokens)
        self.owners = frozenset(t.name for t in tokens)  # a grant lives only as long as its team token
        self.issuer = issuer.rstrip("/")
        self.resource = resource
        self.secure_cookie = self.issuer.startswith("https://")

    # -- clients (RFC 7591) ---------------------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        raw = self.store.load_client(client_id)
        return OAuthClientInformationFull.model_validate_json(raw) if raw else None

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        uris = [str(uri) for uri in client_info.redirect_uris or []]
        if not uris:
            raise RegistrationError("invalid_redirect_uri", "at least one redirect URI is required")
        if len(uris) > MAX_REDIRECT_URIS:
            raise RegistrationError("invalid_redirect_uri", f"at most {MAX_REDIRECT_URIS} redirect URIs")
        for uri in uris:
            problem = redirect_uri_problem(uri)
            if problem:
                raise RegistrationError("invalid_redirect_uri", problem)
        if client_info.client_name and len(client_info.client_name) > MAX_NAME_LENGTH:
            raise RegistrationError("invalid_client_metadata", f"client_name longer than {MAX_NAME_LENGTH} characters")
        unsupported = set(client_info.grant_types) - {"authorization_code", "refresh_token"}
        if unsupported:
            raise RegistrationError("invalid_client_metadata",
                                    f"unsupported grant_types: {', '.join(sorted(unsupported))}")
        # Every client is public (PKCE S256 protects the code): no client secret is issued, so none is
        # stored in plain. RFC 7591 lets the server change the metadata it registers; the response says
        # token_endpoint_auth_method "none", and a secret a client still sends is ignored.
        client_info.token_endpoint_auth_method = "none"
        client_info.client_secret = None
        client_info.client_secret_expires_at = None
        info = client_info.model_dump_json(exclude_none=True)
        if len(info.encode()) > MAX_METADATA_BYTES:
            raise RegistrationError("invalid_client_metadata", f"client metadata larger than {MAX_METADATA_BYTES} bytes")
        if not self.store.save_client(client_info.client_id, info):
            raise RegistrationError("invalid_client_metadata", "this server has too many registered clients")

    # -- authorization --------------------------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        if params.resource is not None and not self._is_this_resource(params.resource):
            raise AuthorizeError("invalid_target", f"resource must be {self.resource}")
        scopes = params.scopes or (client.scope.split() if client.scope else list(ALL_SCOPES))
        unknown = [s for s in scopes if s not in ALL_SCOPES]
        if unknown:
            raise AuthorizeError("invalid_scope", f"unknown scope: {' '.join(unknown)}")
        request_id = secrets.token_urlsafe(24)
        pending = Pending(
            client_id=client.client_id,
            client_name=client.client_name or client.client_id,
            redirect_uri=str(params.redirect_uri),
            redirect_given=params.redirect_uri_provided_explicitly,
            state=params.state,
            code_challenge=params.code_challenge,
            scopes=[s for s in ALL_SCOPES if s in scopes],
            resource=params.resource,
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + PENDING_SECONDS,
        )
        self.store.save_pending(request_id, json.dumps(asdict(pending)), pending.expires_at, keep=MAX_PENDING)
        return f"{self.issuer}{CONSENT_PATH}?{urlencode({'request': request_id})}"

    def _is_this_resource(self, resource: str) -> bool:
        return resource.rstrip("/") == self.resource.rstrip("/")

    # -- codes and tokens -----------------------------------------------------------------------

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        stored = self.store.load_code(authorization_code)
        if stored is None or stored.grant.client_id != client.client_id:
            return None
        if stored.used:  # a replayed code: whoever holds it may have stolen it; end the grant
            logger.warning("OAuth: authorization code reused; revoking its grant for client %s", client.client_id)
            self.store.revoke_grant(stored.grant.grant_id)
            return None
        return AuthorizationCode(
            code=authorization_code,
            scopes=stored.grant.scopes,
            expires_at=stored.expires_at,
            client_id=stored.grant.client_id,
            code_challenge=stored.code_challenge,
            redirect_uri=AnyUrl(stored.redirect_uri),
            redirect_uri_provided_explicitly=stored.redirect_given,
            resource=stored.grant.resource,
            subject=stored.grant.owner,
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        grant = self.store.redeem_code(authorization_code.code)
        if grant is None:  # lost a race with another exchange of the same code
            stored = self.store.load_code(authorization_code.code)
            if stored is not None:
                self.store.revoke_grant(stored.grant.grant_id)
            raise TokenError("invalid_grant", "authorization code was already used")
        return self._tokens_for(grant)

    async def load_refresh_token(self, client: OAuthClientInformationFull, refresh_token: str) -> RefreshToken | None:
        stored = self.store.load_token(refresh_token, "refresh")
        if stored is None or stored.grant.client_id != client.client_id or not self._owner_current(stored.grant):
            return None
        if stored.used:  # rotated already: a replay means two parties hold it; end the grant
            logger.warning("OAuth: refresh token reused; revoking its grant for client %s", client.client_id)
            self.store.revoke_grant(stored.grant.grant_id)
            return None
        return RefreshToken(token=refresh_token, client_id=stored.grant.client_id, scopes=stored.grant.scopes,
                            expires_at=int(stored.expires_at), resource=stored.grant.resource,
                            subject=stored.grant.owner)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        stored = self.store.load_token(refresh_token.token, "refresh")
        if stored is None or not self.store.use_refresh_token(refresh_token.token):
            if stored is not None:
                self.store.revoke_grant(stored.grant.grant_id)
            raise TokenError("invalid_grant", "refresh token was already used")
        return self._tokens_for(stored.grant)  # same scopes as the grant (narrowing is not kept)

    def _tokens_for(self, grant: Grant) -> OAuthToken:
        issued = self.store.issue_tokens(grant)
        return OAuthToken(access_token=issued.access_token, token_type="Bearer", expires_in=issued.expires_in,
                          scope=" ".join(grant.scopes), refresh_token=issued.refresh_token)

    async def load_access_token(self, token: str) -> AccessToken | None:
        """Every bearer check: the team's static tokens (both scopes), then issued access tokens."""
        match = self.static.match(token)
        if match is not None:
            return AccessToken(token=token, client_id=match.name, scopes=list(ALL_SCOPES),
                               resource=self.resource, subject=match.name)
        stored = self.store.load_token(token, "access")
        if stored is None or not self._owner_current(stored.grant):
            return None
        # client_id is the OAuth client (so /revoke and the SDK's session binding work); the owner
        # (the team client name the consent bound the grant to) is the subject.
        return AccessToken(token=token, client_id=stored.grant.client_id, scopes=stored.grant.scopes,
                           expires_at=int(stored.expires_at), resource=self.resource, subject=stored.grant.owner)

    def _owner_current(self, grant: Grant) -> bool:
        """A grant whose team client token was removed from KOJI_MCP_AUTH_TOKEN ends (and is revoked)."""
        if grant.owner in self.owners:
            return True
        logger.warning("OAuth: the client name of a grant is no longer configured; revoking the grant")
        self.store.revoke_grant(grant.grant_id)
        return False

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        stored = self.store.load_token(token.token, "refresh" if isinstance(token, RefreshToken) else "access")
        if stored is not None:
            self.store.revoke_grant(stored.grant.grant_id)

    async def exchange_identity_assertion(self, client: Any, params: Any) -> OAuthToken:
        raise TokenError("unsupported_grant_type", "the JWT bearer grant is not supported")

    # -- the consent page -----------------------------------------------------------------------

    async def consent(self, request: Request) -> Response:
        if request.method == "GET":
            pending = self._pending_for(request.query_params.get("request"))
            if pending is None:
                return _expired_page()
            request_id = request.query_params["request"]
            response = self._page(request_id, pending, error=None, status=200)
            response.set_cookie(CSRF_COOKIE, pending.csrf, max_age=PENDING_SECONDS, path=CONSENT_PATH,
                                httponly=True, samesite="strict", secure=self.secure_cookie)
            return response
        form = await request.form()
        request_id = _text(form.get("request"))
        pending = self._pending_for(request_id)
        if pending is None:
            return _expired_page()
        # The hidden token must match this pending request (unguessable, single-use). The cookie set with
        # the page is checked when the browser sends it (a client without a cookie jar still works): a
        # forged post would also need a team access code, which is what the page asks for.
        csrf = _text(form.get("csrf_token"))
        cookie = request.cookies.get(CSRF_COOKIE)
        if not (hmac.compare_digest(csrf.encode(), pending.csrf.encode())
                and (cookie is None or hmac.compare_digest(cookie.encode(), pending.csrf.encode()))):
            return _message_page("Session check failed",
                                 "This form did not come from this page. Start again from your assistant.", 403)
        decision = _text(form.get("decision"))
        if decision == "deny":
            if not self.store.take_pending(request_id):
                return _expired_page()
            return _redirect(construct_redirect_uri(pending.redirect_uri, error="access_denied",
                                                    error_description="the user denied access", state=pending.state))
        if decision != "approve":
            return self._page(request_id, pending, error="Choose Approve or Deny.", status=400)
        address = request.client.host if request.client else "unknown"
        if self._too_many_wrong_codes(address):
            response = self._page(request_id, pending, status=429,
                                  error="Too many wrong access codes. Wait a minute, then try again.")
            response.headers["Retry-After"] = "60"
            return response
        client = self.static.match(_text(form.get("access_code")))
        if client is None:
            self._note_wrong_code(address)
            logger.warning("OAuth consent: wrong access code from %s for client %s", address, pending.client_id)
            return self._page(request_id, pending, status=401,
                              error="That access code is not right. Ask whoever runs this server for yours.")
        if not self.store.take_pending(request_id):  # single use, across replicas: another answer came first
            return _expired_page()
        code = self.store.create_grant_with_code(
            client_id=pending.client_id, owner=client.name, scopes=pending.scopes, resource=pending.resource,
            redirect_uri=pending.redirect_uri, redirect_given=pending.redirect_given,
            code_challenge=pending.code_challenge,
        )
        logger.info("OAuth consent: %s approved client %s (%s)", client.name, pending.client_id,
                    " ".join(pending.scopes))
        return _redirect(construct_redirect_uri(pending.redirect_uri, code=code, state=pending.state))

    def _pending_for(self, request_id: str | None) -> Pending | None:
        raw = self.store.load_pending(request_id) if request_id else None
        return Pending(**json.loads(raw)) if raw else None

    def _note_wrong_code(self, address: str) -> None:
        self.store.note_wrong_code(address)

    def _too_many_wrong_codes(self, address: str) -> bool:
        mine, everyone = self.store.wrong_codes_last_minute(address)
        return mine >= WRONG_CODES_PER_MINUTE or everyone >= WRONG_CODES_PER_MINUTE_ALL

    def _page(self, request_id: str, pending: Pending, *, error: str | None, status: int) -> HTMLResponse:
        e = html.escape
        host = urlparse(pending.redirect_uri).netloc
        scopes = "".join(f"<li><code>{e(s)}</code>: {e(SCOPE_TEXT[s])}</li>" for s in pending.scopes)
        alert = f'<p class="error" role="alert">{e(error)}</p>' if error else ""
        body = f"""
<h1>Connect <span class="name">{e(pending.client_name)}</span> to Koji interviews?</h1>
<p><b>{e(pending.client_name)}</b> asks to use this koji-mcp server as you. If you approve, your browser
goes back to <b class="host">{e(host)}</b>.</p>
<p class="hint">The app names itself; the address is what counts. Approve only if you just started
connecting from an assistant that lives there.</p>
<p>It will be able to:</p>
<ul>{scopes}</ul>
{alert}
<form method="post" action="{CONSENT_PATH}">
  <input type="hidden" name="request" value="{e(request_id)}">
  <input type="hidden" name="csrf_token" value="{e(pending.csrf)}">
  <label for="access_code">Access code</label>
  <input type="password" id="access_code" name="access_code" autocomplete="current-password" autofocus>
  <p class="hint">Your team client token for this server (the one in <code>KOJI_MCP_AUTH_TOKEN</code>).
  Interviews you start through this connection are filed under that client's name.</p>
  <div class="buttons">
    <button type="submit" name="decision" value="approve">Approve</button>
    <button type="submit" name="decision" value="deny" class="secondary" formnovalidate>Deny</button>
  </div>
</form>"""
        return _html(body, status)


def register_consent_route(server: Any, provider: BuiltinOAuthProvider) -> None:
    """The consent page lives on this server (same origin as /authorize), outside bearer auth."""
    server.custom_route(CONSENT_PATH, methods=["GET", "POST"])(provider.consent)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _expired_page() -> HTMLResponse:
    return _message_page("This request has expired",
                         "This authorization request is unknown, expired or already answered. "
                         "Start connecting again from your assistant.", 400)


def _message_page(title: str, text: str, status: int) -> HTMLResponse:
    return _html(f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>", status)


_STYLE = """
body{font:16px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f5f5f4;color:#1c1917}
main{max-width:32rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:12px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.3rem;margin-top:0}.name,.host{overflow-wrap:anywhere}
label{display:block;font-weight:600;margin-top:1rem}
input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;font-size:1rem;margin-top:.3rem;
border:1px solid #a8a29e;border-radius:6px}
.hint{font-size:.85rem;color:#57534e}.error{color:#b91c1c;font-weight:600}
.buttons{display:flex;gap:.75rem;margin-top:1.25rem}
button{padding:.6rem 1.4rem;font-size:1rem;border-radius:6px;border:1px solid #1c1917;background:#1c1917;
color:#fff;cursor:pointer}button.secondary{background:#fff;color:#1c1917}
"""


def _html(body: str, status: int) -> HTMLResponse:
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>koji-mcp: authorize</title><style>{_STYLE}</style></head>
<body><main>{body}</main></body></html>"""
    return HTMLResponse(page, status_code=status, headers={
        "Cache-Control": "no-store",
        # No scripts, no external anything; nobody may frame the page (clickjacking the Approve button).
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                                   "base-uri 'none'",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    })



MAX_REGISTRATION_BODY = 16 * 1024  # a client's metadata is a few hundred bytes; far more is abuse


class RfcErrors:
    """ASGI middleware for the two places where the SDK's OAuth routes do not answer as the RFCs say.

    - `/register` with a huge body: the server-wide body limit would answer 413 in plain text, and
      unknown fields were silently dropped; RFC 7591 wants `400 invalid_client_metadata`.
    - `/token` with a `redirect_uri` other than the one used at `/authorize`: the SDK answers
      `invalid_request`; RFC 6749 §5.2 says `invalid_grant`.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in ("/register", "/token"):
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/register":
            body, more = b"", True
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > MAX_REGISTRATION_BODY:
                    await _json_error(send, 400, "invalid_client_metadata",
                                      f"client metadata larger than {MAX_REGISTRATION_BODY:,} bytes")
                    return
            replayed = False

            async def replay() -> Any:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
            return
        held: dict[str, Any] = {}

        async def send_rfc(message: Any) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held["start"] = message
                return
            if message["type"] == "http.response.body" and "start" in held:
                held["body"] = held.get("body", b"") + message.get("body", b"")
                if message.get("more_body"):
                    return
                body = held["body"]
                try:
                    payload = json.loads(body)
                except ValueError:
                    payload = None
                if (isinstance(payload, dict) and payload.get("error") == "invalid_request"
                        and "redirect_uri" in str(payload.get("error_description", ""))):
                    payload["error"] = "invalid_grant"
                    body = json.dumps(payload).encode()
                headers = [(k, v) for k, v in held["start"].get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**held["start"], "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        await self.app(scope, receive, send_rfc)


async def _json_error(send: Any, status: int, error: str, description: str) -> None:
    body = json.dumps({"error": error, "error_description": description}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
