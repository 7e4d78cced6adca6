"""Bearer-token auth for the HTTP transports: static tokens, each naming a client.

Why static tokens: koji-mcp is usually run by a team for its own assistants; a token per client
is enough to keep strangers out and to keep each client's interviews private (the ledger's owner is
the client's name). Tokens are compared in constant time, and the client's token is never sent
upstream: Koji only ever sees the server's own API key.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings

MIN_TOKEN_LENGTH = 16
SCOPE = "koji-mcp"


class AuthConfigError(ValueError):
    """A token list that cannot be used; one line for a human."""


@dataclass(frozen=True)
class ClientToken:
    name: str
    token: str

    def __repr__(self) -> str:  # never show the token itself
        return f"ClientToken(name={self.name!r}, token='{self.token[:4]}…')"


def parse_tokens(flag_values: Iterable[str], env: Mapping[str, str] | None = None) -> list[ClientToken]:
    """`TOKEN` or `NAME=TOKEN` items, from flags and the comma-separated KOJI_MCP_AUTH_TOKEN."""
    env = os.environ if env is None else env
    raw = [item.strip() for item in (env.get("KOJI_MCP_AUTH_TOKEN") or "").split(",") if item.strip()]
    raw += [item.strip() for item in flag_values if item.strip()]
    tokens: list[ClientToken] = []
    for index, item in enumerate(raw, start=1):
        name, sep, token = item.partition("=")
        if not sep:
            name, token = ("client" if len(raw) == 1 else f"client-{index}"), item
        name, token = name.strip(), token.strip()
        if not name or not all(c.isalnum() or c in "-_.@" for c in name):
            raise AuthConfigError(f"auth token #{index}: client names may use letters, digits and - _ . @")
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

    async def verify_token(self, token: str) -> AccessToken | None:
        offered = token.encode()
        match: ClientToken | None = None
        for client, expected in self._tokens:  # no early exit: timing does not reveal which matched
            if hmac.compare_digest(offered, expected):
                match = client
        if match is None:
            return None
        return AccessToken(token=token, client_id=match.name, scopes=[SCOPE], subject=match.name)


def auth_settings(public_url: str, mcp_path: str) -> AuthSettings:
    """Resource-server settings, so 401s carry WWW-Authenticate and the metadata is served."""
    base = public_url.rstrip("/")
    return AuthSettings(
        issuer_url=base,  # required by the SDK; there is no OAuth server, tokens are static
        resource_server_url=f"{base}{mcp_path}",
        required_scopes=[SCOPE],
        validate_token_resource=False,
    )

