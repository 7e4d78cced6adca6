"""An external OAuth issuer (Auth0, Keycloak, Okta, Entra ID…): validate its JWT access tokens.

koji-mcp is then a resource server only: the company's identity provider signs in the user and
issues the tokens; we check each one against the issuer's published keys (JWKS) with PyJWT — no
hand-written crypto. What a token must satisfy:
- signed with RS256 or ES256 by a key in the issuer's JWKS (`none` and HS* are never accepted: an
  HMAC "signed" with the public key must not pass);
- `iss` equal to the configured issuer, character for character;
- `aud` naming this server's resource URL (public URL + /mcp);
- `exp` in the future and `nbf` (if any) in the past, with LEEWAY seconds for clock skew;
- an owner claim (`sub` unless configured otherwise); the ledger owner becomes `idp:<value>`.

The JWKS location is discovered from the issuer's metadata (RFC 8414, then OpenID Connect
discovery). Keys are cached; a token naming an unknown `kid` triggers a refetch (key rotation), at
most once per MIN_REFRESH_SECONDS so that made-up kids cannot turn us into a traffic amplifier.
Nothing here ever logs a token.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from koji_mcp.config import is_loopback

logger = logging.getLogger(__name__)

ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}  # the accepted `alg`s and the JWK key type each needs
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat
MIN_REFRESH_SECONDS = 5.0  # at most one fetch per this interval triggered by tokens (unknown kid, issuer down)
KEYS_MAX_AGE = 3600.0  # refetch the JWKS when a token arrives and the keys are older than this
FETCH_TIMEOUT = 10.0
MAX_DOCUMENT_BYTES = 512 * 1024
OWNER_PREFIX = "idp:"
MAX_OWNER_LENGTH = 256


class IssuerError(Exception):
    """The issuer's metadata or JWKS cannot be used. `fatal`: it answered, but wrongly (a setup error)."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


def metadata_urls(issuer: str) -> list[str]:
    """RFC 8414 (well-known inserted before the issuer's path), then OpenID Connect discovery (appended)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    return [f"{origin}/.well-known/oauth-authorization-server{path}",
            f"{origin}{path}/.well-known/openid-configuration"]


def _secure_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or ""))


class JWTVerifier(TokenVerifier):
    """Verifies the external issuer's JWT access tokens; see the module docstring for the rules."""

    def __init__(self, issuer: str, resource_url: str, *, owner_claim: str = "sub") -> None:
        self.issuer = issuer
        self.resource_url = resource_url.rstrip("/")
        self.owner_claim = owner_claim
        self._jwks_uri: str | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._loaded_at = float("-inf")
        self._last_token_fetch = float("-inf")  # when a token last made us fetch (rate-limited)
        self._lock = anyio.Lock()

    # -- fetching -------------------------------------------------------------------------------
    async def _get_json(self, client: httpx.AsyncClient, url: str) -> tuple[int, Any]:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise IssuerError(f"cannot reach {url}: {type(exc).__name__}", fatal=False) from None
        if response.status_code >= 500:
            raise IssuerError(f"{url} answered HTTP {response.status_code}", fatal=False)
        if response.status_code != 200:
            return response.status_code, None
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise IssuerError(f"{url} answered a document over {MAX_DOCUMENT_BYTES} bytes", fatal=True)
        try:
            return 200, response.json()
        except ValueError:
            raise IssuerError(f"{url} did not answer JSON", fatal=True) from None

    async def _discover(self, client: httpx.AsyncClient) -> str:
        tried = []
        for url in metadata_urls(self.issuer):
            status, document = await self._get_json(client, url)
            if not isinstance(document, dict):
                tried.append(f"{url} (HTTP {status})")
                continue
            if document.get("issuer") != self.issuer:
                raise IssuerError(
                    f"the metadata at {url} names the issuer {document.get('issuer')!r}, not {self.issuer!r}: "
                    "set KOJI_MCP_OAUTH_ISSUER to exactly the issuer your identity provider publishes", fatal=True)
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not _secure_url(jwks_uri):
                raise IssuerError(f"the metadata at {url} has no https jwks_uri", fatal=True)
            return jwks_uri
        raise IssuerError(f"no OAuth/OpenID metadata for issuer {self.issuer}: tried {', '.join(tried)}", fatal=True)

    async def refresh(self) -> None:
        """Discover the JWKS location (once) and fetch the keys. Raises IssuerError."""
        try:
            with anyio.fail_after(FETCH_TIMEOUT):  # a total deadline: httpx's timeouts are per read
                async with httpx.AsyncClient(timeout=FETCH_TIMEOUT, follow_redirects=False) as client:
                    if self._jwks_uri is None:
                        self._jwks_uri = await self._discover(client)
                    status, document = await self._get_json(client, self._jwks_uri)
        except TimeoutError:
            raise IssuerError(f"the issuer did not answer within {FETCH_TIMEOUT:.0f} s", fatal=False) from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise IssuerError(f"the JWKS at {self._jwks_uri} is not a key set (HTTP {status})", fatal=True)
        keys: dict[str | None, jwt.PyJWK] = {}
        for data in document["keys"]:
            if not isinstance(data, dict) or data.get("kty") not in ALGORITHMS.values() or data.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(data)
            except jwt.PyJWTError:
                continue  # a key type or curve we do not accept
            if key.algorithm_name in ALGORITHMS:  # RSA for RS256 (not RS384…), EC on P-256 for ES256
                keys[data.get("kid")] = key
        if not keys:
            raise IssuerError(f"the JWKS at {self._jwks_uri} has no RS256/ES256 signing keys", fatal=True)
        self._keys = keys
        self._loaded_at = time.monotonic()
        logger.info("loaded %d signing key(s) from the issuer's JWKS", len(keys))

    async def warm_up(self) -> None:
        """Fetch metadata and keys at startup. A setup error raises; an unreachable issuer only warns."""
        try:
            await self.refresh()
        except IssuerError as exc:
            if exc.fatal:
                raise
            logger.warning("OAuth issuer not reachable yet (%s); will retry when a token arrives", exc)

    async def _key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid`. An unknown kid, or keys older than KEYS_MAX_AGE (a key the issuer
        withdrew must stop working), refetch the JWKS — at most once per MIN_REFRESH_SECONDS."""
        key = self._lookup(kid)
        if key is not None and not self._stale():
            return key
        async with self._lock:  # concurrent requests share one fetch
            key = self._lookup(kid)
            if key is not None and not self._stale():
                return key
            waited = time.monotonic() - self._last_token_fetch
            if waited < MIN_REFRESH_SECONDS:
                if key is None:
                    logger.info("token signed with unknown key id %r; JWKS refetched %.0f s ago, not again yet",
                                kid, waited)
                return key  # stale keys keep working while the issuer cannot be asked again
            self._last_token_fetch = time.monotonic()
            try:
                await self.refresh()
            except IssuerError as exc:
                logger.warning("cannot load the OAuth issuer's keys: %s", exc)
                if exc.fatal:  # it answered, but with no usable keys: trust none of the old ones either
                    self._keys = {}
                    return None
                return key  # unreachable: keep using what it published last
        return self._lookup(kid)

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at > KEYS_MAX_AGE

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid) if kid is not None else None

    # -- verifying ------------------------------------------------------------------------------
    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None  # not a JWT (a wrong static token, say): nothing to log
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            logger.info("rejected an access token: algorithm %r is not accepted (RS256, ES256 only)", alg)
            return None
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        key = await self._key_for(kid)
        if key is None:
            logger.info("rejected an access token: no signing key %r in the issuer's JWKS", kid)
            return None
        if key.algorithm_name != alg:
            logger.info("rejected an access token: key %r does not sign %s", kid, alg)
            return None
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], issuer=self.issuer,
                audience=[self.resource_url, self.resource_url + "/"], leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            logger.info("rejected an access token: %s", exc)  # PyJWT's reasons never quote the token
            return None
        subject = claims.get(self.owner_claim)
        if not isinstance(subject, str) or not subject or len(subject) > MAX_OWNER_LENGTH or not subject.isprintable():
            logger.info("rejected an access token: no usable %r claim to own interviews", self.owner_claim)
            return None
        audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        return AccessToken(
            token=token,
            client_id=OWNER_PREFIX + subject,
            scopes=token_scopes(claims),
            expires_at=int(claims["exp"]) + LEEWAY,  # the SDK checks it again, without leeway
            resource=next((a for a in audience if str(a).rstrip("/") == self.resource_url), self.resource_url),
            subject=OWNER_PREFIX + subject,  # the owner (current_owner reads subject first)
            claims=claims,
        )


def token_scopes(claims: dict[str, Any]) -> list[str]:
    """`scope` (RFC 9068: space-separated) or `scp` (Okta, Entra: a list or a string)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [s for s in raw if isinstance(s, str)]
    return []
