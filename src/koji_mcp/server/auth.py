"""Bearer-token auth for the HTTP transports: static client tokens, an external OAuth issuer, scopes.

Why static tokens: koji-mcp is usually run by a team for its own assistants; a token per client
is enough to keep strangers out and to keep each client's interviews private (the ledger's owner is
the client's name). Tokens are compared in constant time, and the client's token is never sent
upstream: Koji only ever sees the server's own API key.

Remote hosts (ChatGPT, claude.ai) speak OAuth instead: with an external issuer (jwt_auth.py) this
server is a resource server that accepts the issuer's JWT access tokens, and publishes
protected-resource metadata (RFC 9728) naming that issuer. Without OAuth nothing names an
authorization server, and a 401 says plainly which header to send.

Who owns what: `AccessToken.client_id` carries the ledger owner. A static client's owner is its
name; `local` is the stdio/CLI user and is reserved; a JWT's owner is `idp:<sub>`, and `:` can
appear in no client name, so the two can never collide.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from koji_mcp.interviews.ledger import LOCAL_OWNER
from koji_mcp.logs import mask
from koji_mcp.server.sdk import authenticated_token
from koji_mcp.server.scopes import ALL_SCOPES, READ_SCOPE

MIN_TOKEN_LENGTH = 16
RESERVED_CLIENT_NAMES = frozenset({LOCAL_OWNER})  # the stdio/CLI user's interviews
IDP_OWNER_PREFIX = "idp:"  # JWT subjects of the external issuer; ':' is never part of a client name


class AuthConfigError(ValueError):
    """A token list that cannot be used; one line for a human."""


@dataclass(frozen=True)
class ClientToken:
    name: str
    token: str

    def __repr__(self) -> str:  # never show the token itself
        return f"ClientToken(name={self.name!r}, token='{mask(self.token)}')"


def parse_tokens(items: Iterable[str]) -> list[ClientToken]:
    """`TOKEN` or `NAME=TOKEN` items (Settings.auth_tokens: KOJI_MCP_AUTH_TOKEN and --auth-token)."""
    raw = [item.strip() for item in items if item.strip()]
    tokens: list[ClientToken] = []
    for index, item in enumerate(raw, start=1):
        name, sep, token = item.partition("=")
        if not sep:
            name, token = ("client" if len(raw) == 1 else f"client-{index}"), item
        name, token = name.strip(), token.strip()
        if not name or not all(c.isalnum() or c in "-_.@" for c in name):
            raise AuthConfigError(f"auth token #{index}: client names may use letters, digits and - _ . @")
        if name.lower() in RESERVED_CLIENT_NAMES:
            raise AuthConfigError(
                f"auth token #{index}: the client name {name!r} is reserved for the stdio/CLI user "
                "(its interviews would be shared with this client); choose another name"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise AuthConfigError(
                f"auth token for client {name!r} is too short: use at least {MIN_TOKEN_LENGTH} random characters "
                "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        tokens.append(ClientToken(name, token))
    names = [t.name for t in tokens]
    if len(set(names)) != len(names):
        raise AuthConfigError("auth tokens: each client name must be unique")
    if len({t.token for t in tokens}) != len(tokens):
        raise AuthConfigError("auth tokens: two clients share the same token")
    return tokens


class StaticTokenVerifier(TokenVerifier):
    """Accepts exactly the configured tokens; the matching client's name becomes the owner."""

    def __init__(self, tokens: list[ClientToken]) -> None:
        self._tokens = [(t, t.token.encode()) for t in tokens]

    def match(self, token: str) -> ClientToken | None:
        """The client whose token this is, compared in constant time against every token."""
        offered = token.encode()
        match: ClientToken | None = None
        for client, expected in self._tokens:  # no early exit: timing does not reveal which matched
            if hmac.compare_digest(offered, expected):
                match = client
        return match

    async def verify_token(self, token: str) -> AccessToken | None:
        match = self.match(token)
        if match is None:
            return None
        return AccessToken(token=token, client_id=match.name, scopes=list(ALL_SCOPES), subject=match.name)


class AnyOfVerifier(TokenVerifier):
    """Static client tokens first (Cursor, VS Code, Claude Code keep working), then the OAuth verifier."""

    def __init__(self, *verifiers: TokenVerifier) -> None:
        self._verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self._verifiers:
            found = await verifier.verify_token(token)
            if found is not None:
                return found
        return None


def resource_url(public_url: str, mcp_path: str) -> str:
    """This server's OAuth resource identifier: what JWT `aud` must name."""
    return f"{public_url.rstrip('/')}{mcp_path}"


def auth_settings(public_url: str, issuer: str | None) -> AuthSettings:
    """What the SDK needs to put the bearer middleware in front of the MCP endpoint.

    Every request needs `interviews:read` (a token without it gets 403 insufficient_scope); write
    tools check `interviews:write` per call. `resource_server_url` stays unset: the SDK would derive
    the published `scopes_supported` from `required_scopes` and, with static tokens only, name an
    authorization server that does not exist. AuthFront publishes the metadata instead, and only
    when OAuth is on.
    """
    return AuthSettings(
        issuer_url=issuer or public_url.rstrip("/"),  # required by the SDK; published only with OAuth
        resource_server_url=None,
        required_scopes=[READ_SCOPE],
    )


class OwnerUnknown(PermissionError):
    """Auth is configured, but this request carries no authenticated client: refuse, never guess."""


_owner_required: ContextVar[bool] = ContextVar("koji_mcp_owner_required", default=False)


@contextmanager
def owner_required() -> Iterator[None]:
    """Within this block current_owner() fails closed instead of falling back to "local"."""
    reset = _owner_required.set(True)
    try:
        yield
    finally:
        _owner_required.reset(reset)


def current_owner() -> str:
    """Who is calling: the authenticated client (its access token's client_id, the ledger's owner), or "local".

    "local" (stdio, the CLI, an HTTP server without auth) only when no auth is configured: with
    auth on (see owner_required) a request without an authenticated client raises OwnerUnknown.
    """
    token = authenticated_token()
    owner = token.subject or token.client_id if token is not None else None
    if owner:  # static tokens and built-in grants: the team client name; external issuer: idp:<sub>
        return owner
    if token is not None or _owner_required.get():
        raise OwnerUnknown("no authenticated client for this request")
    return LOCAL_OWNER


def access_problem(scope: str, *, auth_required: bool) -> str | None:
    """Why the current caller may not use something that needs `scope`, or None if they may."""
    token = authenticated_token()
    if token is None or not token.client_id:
        if auth_required or token is not None:
            return ("Not authenticated: this server requires a bearer token, and this request carries no "
                    "authenticated client, so nothing was read or sent.")
        return None  # no auth configured: stdio or a loopback HTTP server without tokens
    if scope not in token.scopes:
        granted = " ".join(s for s in token.scopes if s in ALL_SCOPES) or "none of koji-mcp's scopes"
        return (f"This needs the OAuth scope '{scope}', which this access token was not granted (granted: "
                f"{granted}). Nothing was sent to Koji. Reconnect koji-mcp and allow '{scope}' to use it.")
    return None


def granted_scopes(*, auth_required: bool) -> frozenset[str]:
    """The koji-mcp scopes the current caller holds (all of them when no auth is configured)."""
    token = authenticated_token()
    if token is None or not token.client_id:
        return frozenset() if auth_required or token is not None else frozenset(ALL_SCOPES)
    return frozenset(token.scopes)


@dataclass(frozen=True)
class AuthFront:
    """What a client sees before it is let in: the 401/403 challenges and, with OAuth, the metadata.

    `authorization_server` is the OAuth issuer clients should use; None means static tokens only,
    where nothing may point at an authorization server.
    """

    resource_url: str
    authorization_server: str | None = None

    @property
    def metadata_url(self) -> str | None:
        if self.authorization_server is None:
            return None
        from mcp.server.auth.routes import build_resource_metadata_url

        return str(build_resource_metadata_url(self.resource_url))  # type: ignore[arg-type]

    def challenge(self, status: int, *, has_credentials: bool) -> tuple[str, bytes]:
        """The WWW-Authenticate value and JSON body for a 401 (no/bad token) or 403 (scope missing)."""
        if status == 403:
            error = "insufficient_scope"
            description = f"This access token lacks the scope {READ_SCOPE}, which every request needs"
        elif self.authorization_server is None:
            error = "invalid_token"
            description = ("Invalid token: send Authorization: Bearer <token> with one of this server's client tokens"
                           if has_credentials else "Authentication required: send Authorization: Bearer <token>")
        else:
            error = "invalid_token"
            description = ("Invalid or expired token: sign in again with OAuth (see resource_metadata)"
                           if has_credentials else
                           "Authentication required: sign in with OAuth (see resource_metadata) "
                           "or send Authorization: Bearer <token>")
        parts = [f'error="{error}"', f'error_description="{description}"']
        if self.authorization_server is not None:
            parts += [f'scope="{" ".join(ALL_SCOPES)}"', f'resource_metadata="{self.metadata_url}"']
        body = json.dumps({"error": error, "error_description": description}).encode()
        return "Bearer " + ", ".join(parts), body

    def install(self, app: Any) -> None:
        """Put the metadata route (OAuth only) and the honest challenges in front of a Starlette app.

        The SDK's own metadata route would publish `required_scopes` as `scopes_supported`; ours
        (built by the SDK's public `create_protected_resource_routes`) lists both scopes, so hosts
        ask for write too, while a token with read alone is still let in.
        """
        if self.authorization_server is not None:
            from mcp.server.auth.routes import create_protected_resource_routes

            routes = create_protected_resource_routes(
                resource_url=self.resource_url,  # type: ignore[arg-type]
                authorization_servers=[self.authorization_server],  # type: ignore[list-item]
                scopes_supported=list(ALL_SCOPES),
                resource_name="koji-mcp",
            )
            app.router.routes[0:0] = routes  # before the SDK's routes: first match wins
        app.add_middleware(HonestChallenges, front=self)


class HonestChallenges:
    """ASGI middleware replacing the SDK's bearer challenges (fixed wording, metadata URL) with ours."""

    def __init__(self, app: ASGIApp, front: AuthFront) -> None:
        self.app = app
        self.front = front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_credentials = any(
            key == b"authorization" and value[:7].lower() == b"bearer " for key, value in scope.get("headers", [])
        )
        replaced: dict[str, Any] = {}

        async def send_honest(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                headers = list(message.get("headers", []))
                www = next((v for k, v in headers if k.lower() == b"www-authenticate"), b"")
                if www.startswith(b"Bearer"):
                    header, body = self.front.challenge(message["status"], has_credentials=has_credentials)
                    replaced["body"] = body
                    headers = [(k, v) for k, v in headers if k.lower() not in (b"www-authenticate", b"content-length")]
                    headers += [(b"www-authenticate", header.encode()), (b"content-length", str(len(body)).encode())]
                    message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and "body" in replaced:
                if replaced.get("sent"):
                    return
                replaced["sent"] = True
                message = {"type": "http.response.body", "body": replaced["body"], "more_body": False}
            await send(message)

        await self.app(scope, receive, send_honest)
