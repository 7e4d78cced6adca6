"""Where the built-in OAuth server keeps its state: the ledger database (tables from ledger v2).

Why the ledger: clients, grants and tokens must survive a restart (a connector that loses its
registration or tokens at every deploy has to be set up again by hand), and the ledger is already
a private (0600), crash-safe SQLite file — or the PostgreSQL database replicas share, so a connector
approved through one replica works on all of them. Codes and tokens are
stored only as SHA-256 hashes, so a copy of the file lets nobody in.

A *grant* is one consent: an OAuth client, the team client name whose access code approved it
(the owner), and the scopes. Codes and tokens hang off a grant; revoking the grant (on /revoke, on
a reused code, on a reused refresh token) ends every token issued from it at once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from koji_mcp.interviews.database import Connection
from koji_mcp.interviews.ledger import Ledger

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 30 * 24 * 3600
CODE_SECONDS = 300
MAX_CLIENTS = 10_000  # dynamic registration is open to anyone: bound the table


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    """256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Grant:
    grant_id: str
    client_id: str
    owner: str
    scopes: list[str]
    resource: str | None


@dataclass(frozen=True)
class StoredCode:
    grant: Grant
    redirect_uri: str
    redirect_given: bool
    code_challenge: str
    expires_at: float
    used: bool


@dataclass(frozen=True)
class StoredToken:
    grant: Grant
    kind: str
    expires_at: float
    used: bool


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


class OAuthStore:
    """Thin SQL over the ledger's connection; every write is one transaction under its lock."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._ledger._tx() as db:  # the ledger's database: writes take turns
            yield db

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._ledger._read() as db:
            yield db

    # -- clients --------------------------------------------------------------------------------

    def save_client(self, client_id: str, info_json: str) -> bool:
        """False when the table is full (the registration is refused)."""
        with self._write() as db:
            if db.execute("SELECT COUNT(*) FROM oauth_clients").fetchone()[0] >= MAX_CLIENTS:
                return False
            db.execute("INSERT INTO oauth_clients (client_id, info, created_at) VALUES (?, ?, ?)",
                       (client_id, info_json, time.time()))
        return True

    def load_client(self, client_id: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT info FROM oauth_clients WHERE client_id = ?", (client_id,)).fetchone()
        return row["info"] if row else None

    # -- grants and codes ---------------------------------------------------------------------

    def create_grant_with_code(
        self, *, client_id: str, owner: str, scopes: list[str], resource: str | None,
        redirect_uri: str, redirect_given: bool, code_challenge: str,
    ) -> str:
        """A new grant and its single-use authorization code (returned in plain, stored hashed)."""
        code = new_secret()
        now = time.time()
        grant_id = secrets.token_hex(16)
        with self._write() as db:
            db.execute(
                "INSERT INTO oauth_grants (grant_id, client_id, owner, scopes, resource, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (grant_id, client_id, owner, json.dumps(scopes), resource, now),
            )
            db.execute(
                "INSERT INTO oauth_codes (code_hash, grant_id, redirect_uri, redirect_given, code_challenge,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (token_hash(code), grant_id, redirect_uri, int(redirect_given), code_challenge, now + CODE_SECONDS),
            )
            db.execute("DELETE FROM oauth_codes WHERE expires_at < ?", (now - CODE_SECONDS,))
        return code

    def load_code(self, code: str) -> StoredCode | None:
        """The code, even if used or its grant revoked (the caller decides what that means)."""
        with self._read() as db:
            row = db.execute(
                """SELECT c.*, g.client_id, g.owner, g.scopes, g.resource, g.revoked_at
                   FROM oauth_codes c JOIN oauth_grants g USING (grant_id) WHERE c.code_hash = ?""",
                (token_hash(code),),
            ).fetchone()
        if row is None:
            return None
        return StoredCode(
            grant=_grant(row), redirect_uri=row["redirect_uri"], redirect_given=bool(row["redirect_given"]),
            code_challenge=row["code_challenge"], expires_at=row["expires_at"],
            used=row["used_at"] is not None or row["revoked_at"] is not None,
        )

    def redeem_code(self, code: str) -> Grant | None:
        """Mark the code used and issue nothing yet; None if it was already used (a replay)."""
        with self._write() as db:
            cursor = db.execute("UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL",
                                (time.time(), token_hash(code)))
            if cursor.rowcount != 1:
                return None
            row = db.execute(
                """SELECT g.* FROM oauth_codes c JOIN oauth_grants g USING (grant_id)
                   WHERE c.code_hash = ? AND g.revoked_at IS NULL""",
                (token_hash(code),),
            ).fetchone()
        return _grant(row) if row else None

    # -- tokens ---------------------------------------------------------------------------------

    def issue_tokens(self, grant: Grant) -> IssuedTokens:
        """A fresh access token (1 h) and refresh token for the grant; earlier access tokens end."""
        access, refresh = new_secret(), new_secret()
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM oauth_tokens WHERE grant_id = ? AND kind = 'access'", (grant.grant_id,))
            db.execute("DELETE FROM oauth_tokens WHERE expires_at < ?", (now,))
            db.executemany(
                "INSERT INTO oauth_tokens (token_hash, grant_id, kind, expires_at) VALUES (?, ?, ?, ?)",
                [(token_hash(access), grant.grant_id, "access", now + ACCESS_TOKEN_SECONDS),
                 (token_hash(refresh), grant.grant_id, "refresh", now + REFRESH_TOKEN_SECONDS)],
            )
        return IssuedTokens(access, refresh, ACCESS_TOKEN_SECONDS)

    def load_token(self, token: str, kind: str) -> StoredToken | None:
        """A live (unexpired, grant not revoked) token of `kind`; refresh tokens may be used already."""
        with self._read() as db:
            row = db.execute(
                """SELECT t.kind, t.expires_at, t.used_at, g.* FROM oauth_tokens t JOIN oauth_grants g USING (grant_id)
                   WHERE t.token_hash = ? AND t.kind = ? AND g.revoked_at IS NULL AND t.expires_at > ?""",
                (token_hash(token), kind, time.time()),
            ).fetchone()
        if row is None:
            return None
        return StoredToken(grant=_grant(row), kind=row["kind"], expires_at=row["expires_at"],
                           used=row["used_at"] is not None)

    def use_refresh_token(self, token: str) -> bool:
        """Mark a refresh token used (rotation); False if it already was (a replay)."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE oauth_tokens SET used_at = ? WHERE token_hash = ? AND kind = 'refresh' AND used_at IS NULL",
                (time.time(), token_hash(token)),
            )
        return cursor.rowcount == 1

    # -- consent requests in flight, wrong access codes (any replica may serve each step) ------------

    def save_pending(self, request_id: str, data_json: str, expires_at: float, *, keep: int) -> None:
        """A consent request between /authorize and the form's answer; at most `keep` are kept (oldest go)."""
        with self._write() as db:
            db.execute("DELETE FROM oauth_pending WHERE expires_at < ?", (time.time(),))
            db.execute("INSERT INTO oauth_pending (request_hash, data, expires_at) VALUES (?, ?, ?)",
                       (token_hash(request_id), data_json, expires_at))
            db.execute("""DELETE FROM oauth_pending WHERE request_hash IN (
                              SELECT request_hash FROM oauth_pending ORDER BY expires_at DESC LIMIT -1 OFFSET ?)"""
                       if not self._ledger.postgres else
                       """DELETE FROM oauth_pending WHERE request_hash IN (
                              SELECT request_hash FROM oauth_pending ORDER BY expires_at DESC OFFSET ?)""", (keep,))

    def load_pending(self, request_id: str) -> str | None:
        with self._read() as db:
            row = db.execute("SELECT data FROM oauth_pending WHERE request_hash = ? AND expires_at >= ?",
                             (token_hash(request_id), time.time())).fetchone()
        return row["data"] if row else None

    def take_pending(self, request_id: str) -> bool:
        """Consume a consent request: True for exactly one caller, on whichever replica."""
        with self._write() as db:
            cursor = db.execute("DELETE FROM oauth_pending WHERE request_hash = ? AND expires_at >= ?",
                                (token_hash(request_id), time.time()))
        return cursor.rowcount == 1

    def note_wrong_code(self, address: str) -> None:
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM oauth_wrong_codes WHERE at < ?", (now - 60,))
            db.execute("INSERT INTO oauth_wrong_codes (address, at) VALUES (?, ?)", (address, now))

    def wrong_codes_last_minute(self, address: str) -> tuple[int, int]:
        """(wrong codes from `address`, wrong codes from everyone) in the last minute."""
        with self._read() as db:
            row = db.execute("SELECT COUNT(*) FILTER (WHERE address = ?), COUNT(*) FROM oauth_wrong_codes WHERE at >= ?"
                             if self._ledger.postgres else
                             "SELECT SUM(address = ?), COUNT(*) FROM oauth_wrong_codes WHERE at >= ?",
                             (address, time.time() - 60)).fetchone()
        return int(row[0] or 0), int(row[1])

    def revoke_grant(self, grant_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE oauth_grants SET revoked_at = ? WHERE grant_id = ? AND revoked_at IS NULL",
                       (time.time(), grant_id))
            db.execute("DELETE FROM oauth_tokens WHERE grant_id = ?", (grant_id,))


def _grant(row) -> Grant:  # noqa: ANN001 - sqlite3.Row
    return Grant(grant_id=row["grant_id"], client_id=row["client_id"], owner=row["owner"],
                 scopes=json.loads(row["scopes"]), resource=row["resource"])
