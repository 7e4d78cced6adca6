"""The ledger: a record of every interview this server started (SQLite, or PostgreSQL for replicas).

Why it exists: Koji has no "list interviews" endpoint, and each interview's session token is a
credential that must never enter the model's context. The ledger holds both, survives restarts
and crashes (WAL; each write is its own transaction), and is readable only by its owner (0600).

What Koji said about each interview (summary, themes, transcript), as last read, is kept in a
full-text index (`interview_text`) so `search` can find interviews by what they were about.

The rows live in an embedded SQLite file in the state dir, or — with `KOJI_MCP_DATABASE_URL` — in
PostgreSQL, shared by every replica (interviews/database.py): one interface, the same numbered
migrations, the same SQL, and the same exactly-once rules, decided by the database's transactions.

Rows are scoped by `owner` (the authenticated HTTP client, or "local") and by the Koji base URL
they were started on, so a sandbox session never shows up next to real interviews.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import socket
import stat
import tempfile
import unicodedata
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio

from koji_mcp.config import MEMORY_STATE_DIR, ConfigError
from koji_mcp.interviews.database import (
    Connection,
    Database,
    LedgerSchemaError,
    PostgresDatabase,
    SqliteDatabase,
    StorageError,
    is_postgres_url,
)
from koji_mcp.text import clean_koji_text

__all__ = ["LedgerSchemaError", "StorageError"]  # defined with the engines, raised through the ledger

T = TypeVar("T")

logger = logging.getLogger(__name__)

LEDGER_FILE = "ledger.sqlite3"
MARKER_FILE = "ledger.starts"  # beside the database: how many starts it has ever recorded (see check_intact)
SIDE_FILES = ("-wal", "-shm", "-journal")  # what SQLite creates beside the database
LOCAL_OWNER = "local"
_WORDS = re.compile(r"[^\W_]+")  # letters and digits: what the FTS5 tokenizer keeps

_MIGRATIONS: list[str] = [
    # v1
    """
    CREATE TABLE interviews (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        interview_id    TEXT NOT NULL,
        base_url        TEXT NOT NULL,
        owner           TEXT NOT NULL DEFAULT 'local',
        session_token   TEXT,
        external_id     TEXT,
        display_name    TEXT,
        metadata        TEXT,
        mode            TEXT,
        locale          TEXT,
        status          TEXT NOT NULL,
        initial_message TEXT,
        completion      TEXT,
        note            TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        completed_at    TEXT,
        UNIQUE (base_url, interview_id)
    );
    CREATE INDEX interviews_by_owner ON interviews (base_url, owner, seq DESC);
    CREATE INDEX interviews_by_external_id ON interviews (base_url, owner, external_id);
    """,
    # search: what each interview is about, full-text (FTS5), one row per interviews.seq. The
    # respondent's ids follow the interviews row (triggers); Koji's text is written by index_text.
    # PostgreSQL: a tsvector per interview, written by the ledger (see _PG_ONLY).
    """
    CREATE VIRTUAL TABLE interview_text USING fts5 (
        external_id, display_name, summary, themes, transcript,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO interview_text (rowid, external_id, display_name)
        SELECT seq, external_id, display_name FROM interviews;
    CREATE TRIGGER interview_text_insert AFTER INSERT ON interviews BEGIN
        INSERT INTO interview_text (rowid, external_id, display_name)
            VALUES (new.seq, new.external_id, new.display_name);
    END;
    CREATE TRIGGER interview_text_update AFTER UPDATE OF external_id, display_name ON interviews BEGIN
        UPDATE interview_text SET external_id = new.external_id, display_name = new.display_name
            WHERE rowid = new.seq;
    END;
    CREATE TRIGGER interview_text_delete AFTER DELETE ON interviews BEGIN
        DELETE FROM interview_text WHERE rowid = old.seq;
    END;
    """,
    # the built-in OAuth server's clients, grants, codes and tokens (server/oauth_store.py).
    # Codes and tokens are stored only as SHA-256 hashes; a grant's owner is a team client name.
    """
    CREATE TABLE oauth_clients (
        client_id  TEXT PRIMARY KEY,
        info       TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE oauth_grants (
        grant_id   TEXT PRIMARY KEY,
        client_id  TEXT NOT NULL,
        owner      TEXT NOT NULL,
        scopes     TEXT NOT NULL,
        resource   TEXT,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE oauth_codes (
        code_hash      TEXT PRIMARY KEY,
        grant_id       TEXT NOT NULL,
        redirect_uri   TEXT NOT NULL,
        redirect_given INTEGER NOT NULL,
        code_challenge TEXT NOT NULL,
        expires_at     REAL NOT NULL,
        used_at        REAL
    );
    CREATE TABLE oauth_tokens (
        token_hash TEXT PRIMARY KEY,
        grant_id   TEXT NOT NULL,
        kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
        expires_at REAL NOT NULL,
        used_at    REAL
    );
    CREATE INDEX oauth_tokens_by_grant ON oauth_tokens (grant_id);
    """,
    # an 'unknown' or 'starting' start settled by hand (`koji-mcp ledger resolve`): by whom, when,
    # and the placeholder id the row had before
    """
    ALTER TABLE interviews ADD COLUMN resolved_by TEXT;
    ALTER TABLE interviews ADD COLUMN resolved_at TEXT;
    ALTER TABLE interviews ADD COLUMN resolved_from TEXT;
    """,
    # batch jobs (interviews/jobs.py): one row per job and per respondent
    """
    CREATE TABLE batches (
        batch_id     TEXT PRIMARY KEY,
        base_url     TEXT NOT NULL,
        owner        TEXT NOT NULL,
        status       TEXT NOT NULL,
        mode         TEXT,
        locale       TEXT,
        force        INTEGER NOT NULL DEFAULT 0,
        total        INTEGER NOT NULL,
        error        TEXT,
        resumed      INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        lease_holder TEXT,
        lease_until  REAL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        finished_at  TEXT
    );
    CREATE INDEX batches_unfinished ON batches (base_url, status);
    CREATE TABLE batch_rows (
        batch_id     TEXT NOT NULL,
        row          INTEGER NOT NULL,
        respondent   TEXT NOT NULL,
        external_id  TEXT,
        outcome      TEXT NOT NULL,
        interview_id TEXT,
        error        TEXT,
        seq          INTEGER,
        PRIMARY KEY (batch_id, row)
    )
    """,
    # the Koji pacer's schedule per API key (koji/ratelimit.py): on PostgreSQL every replica paces from
    # this one row, so together they keep within Koji's limit (SQLite: one process, paced in memory)
    """
    CREATE TABLE pacer (
        key_id     TEXT PRIMARY KEY,
        state      TEXT NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    # the built-in OAuth server's consent requests in flight and wrong access codes per address, so that
    # /authorize, the consent page and its form may each reach a different replica
    """
    CREATE TABLE oauth_pending (
        request_hash TEXT PRIMARY KEY,
        data         TEXT NOT NULL,
        expires_at   REAL NOT NULL
    );
    CREATE INDEX oauth_pending_by_expiry ON oauth_pending (expires_at);
    CREATE TABLE oauth_wrong_codes (
        address TEXT NOT NULL,
        at      REAL NOT NULL
    );
    CREATE INDEX oauth_wrong_codes_by_address ON oauth_wrong_codes (address, at);
    """,
    # which process made a reservation (host:pid:random), so another batch or replica can tell a start in
    # flight (wait for its outcome) from the trace of a process that died mid-start (outcome unknown)
    """
    ALTER TABLE interviews ADD COLUMN reserved_by TEXT;
    """,
]

# PostgreSQL runs the same numbered migrations, translated (64-bit ids and doubles); only search differs:
# a tsvector per interview (GIN-indexed) written by the ledger, as FTS5 and its triggers are SQLite's.
_PG_ONLY = {
    2: """
    CREATE TABLE interview_text (
        seq        BIGINT PRIMARY KEY REFERENCES interviews (seq) ON DELETE CASCADE,
        summary    TEXT,
        themes     TEXT,
        transcript TEXT,
        doc        TSVECTOR NOT NULL
    );
    CREATE INDEX interview_text_doc ON interview_text USING GIN (doc);
    """,
}


def _postgres(number: int, script: str) -> str:
    if number in _PG_ONLY:
        return _PG_ONLY[number]
    return (script.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replace("INTEGER", "BIGINT").replace(" REAL", " DOUBLE PRECISION"))


POSTGRES_MIGRATIONS = [_postgres(number, script) for number, script in enumerate(_MIGRATIONS, start=1)]

SEARCH_LIMIT = 20
MAX_SEARCH_WORDS = 16
# FTS5 column weights for bm25, in the table's column order: who it is counts most, then what it was about.
SEARCH_WEIGHTS = (10.0, 10.0, 4.0, 4.0, 1.0)
_PG_WEIGHTS = "{0.1, 0.2, 0.4, 1.0}"  # PostgreSQL's ts_rank weights for D, C, B, A: the same order of importance

STATUSES = ("active", "ended", "completed", "expired", "unknown", "starting", "not_started")
# "starting": written before the start request is sent, so a crash mid-request leaves a trace
# (it reads as "outcome unknown"); "unknown": the request may have reached Koji, no id came back;
# "not_started": an unknown start that a person checked at Koji and settled as never started
# (`koji-mcp ledger resolve … --not-started`): it no longer holds its external_id.
UNSETTLED = ("unknown", "starting")


class ResolveError(ValueError):
    """`resolve` was asked for something it cannot do; the message is one line meant for a human."""


class LedgerRowsLost(ConfigError):
    """The ledger holds fewer starts than it once recorded (emptied, truncated or replaced): it can
    no longer tell who was already invited, so nothing may be started against it. CLI: exit 2."""


class UnsafeStateDir(ConfigError):
    """The state directory or a ledger file is not safely ours (others could read the session
    tokens or plant files); the message is one line saying how to fix it. The CLI exits 2."""


class ReservationRefused(Exception):
    """A reservation hook refused the row (e.g. a batch job that lost its lease): rolled back, nothing sent."""


def best_effort(action: Callable[..., object], *args: object, **kwargs: object) -> bool:
    """Bookkeeping after a request reached Koji: a failing write is logged, never hides what Koji did."""
    try:
        action(*args, **kwargs)
        return True
    except Exception:
        logger.exception("could not update the ledger")
        return False


def _host() -> str:
    """This machine, and its process-id namespace where there is one (containers sharing a hostname each
    have their own pids: a pid is only checked within the namespace that gave it)."""
    try:
        return f"{socket.gethostname()}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return socket.gethostname()


def process_holder() -> str:
    """A process's name in the ledger: host, pid and a random part (a reused pid is not the same process)."""
    return f"{_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


PROCESS = process_holder()  # this process, as its reservations and job leases name it


def holder_is_dead(holder: str | None) -> bool:
    """True when `holder` names a process on this host that no longer exists (elsewhere: unknown, False)."""
    if not holder:
        return True
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != _host() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LedgerEntry:
    """One interview as this server knows it. `session_token` stays server-side."""

    interview_id: str
    owner: str
    status: str
    created_at: str
    updated_at: str
    session_token: str | None = field(default=None, repr=False)
    external_id: str | None = None
    display_name: str | None = None
    metadata: dict[str, Any] | None = None
    mode: str | None = None
    locale: str | None = None
    initial_message: str | None = None
    completion: dict[str, Any] | None = None
    note: str | None = None
    completed_at: str | None = None
    seq: int = 0
    resolved_by: str | None = None  # set when an unknown start was settled by hand
    resolved_at: str | None = None
    resolved_from: str | None = None
    reserved_by: str | None = None  # the process that made the reservation (see process_alive)

    def public(self) -> dict[str, Any]:
        """Everything but the session token, for results and resources."""
        return {
            "interview_id": self.interview_id,
            "status": self.status,
            "external_id": self.external_id,
            "display_name": self.display_name,
            "metadata": self.metadata,
            "mode": self.mode,
            "locale": self.locale,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
            "note": self.note,  # why a start is 'unknown': what went wrong after it was sent
        }


class Ledger:
    """The interviews this server started, on one Database (SQLite or PostgreSQL); thread-safe."""

    def __init__(self, db: Database, base_url: str, *, marker: Path | None = None) -> None:
        self.db = db
        self.path = db.where  # for messages: the file, or the database URL without its password
        self.base_url = base_url
        self._marker = marker
        self._marked_at = 0  # the marker's value when this process last wrote or read it
        self._since_marked = 0  # starts recorded by this process since then
        self.postgres = db.dialect == "postgres"
        try:
            db.migrate(POSTGRES_MIGRATIONS if self.postgres else _MIGRATIONS)
        except BaseException:
            db.close()
            raise
        if self._marker is not None and not os.path.lexists(self._marker):
            with self._tx() as conn:  # a ledger from before the marker existed: start counting now
                self._note_starts(conn)

    @classmethod
    def open(cls, state_dir: str, base_url: str, *, database_url: str | None = None) -> Ledger:
        """Open (creating if needed) the ledger: in PostgreSQL when `database_url` is given, else in
        `state_dir` (`:memory:` keeps it ephemeral)."""
        if database_url:
            if not is_postgres_url(database_url):
                raise ConfigError("KOJI_MCP_DATABASE_URL must be a postgresql:// URL")
            return cls(PostgresDatabase(database_url), base_url)
        if state_dir == MEMORY_STATE_DIR:
            return cls(SqliteDatabase(MEMORY_STATE_DIR, memory=True), base_url)
        directory = Path(state_dir).expanduser()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        check_state_dir(directory)
        path = directory / LEDGER_FILE
        _prepare_file(path)
        marker = path.with_name(MARKER_FILE)
        _check_file(marker)
        return cls(SqliteDatabase(str(path), memory=False), base_url, marker=marker)

    def close(self) -> None:
        self.db.close()

    def readiness(self) -> str | None:
        """None when the ledger's database is reachable and migrated; else one line saying why not."""
        return self.db.readiness()

    async def run(self, call: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`call(*args, **kwargs)` (a ledger write) without holding up the event loop while PostgreSQL answers
        across the network: in a worker thread, shielded, so it runs to the end even if the caller is
        cancelled (what Koji did is recorded; a reservation is never left half made). SQLite answers in microseconds: inline."""
        if not self.postgres:
            return call(*args, **kwargs)
        with anyio.CancelScope(shield=True):  # a start Koji answered is recorded even if its caller went away
            return await anyio.to_thread.run_sync(functools.partial(call, *args, **kwargs))

    def _tx(self) -> Any:
        """One write transaction (the engine's failures come out as StorageError); writes take turns."""
        return self.db.tx()

    def _read(self) -> Any:
        return self.db.read()

    # -- the marker: a ledger that lost its rows must not look new ---------------------------------

    def _note_starts(self, db: Connection) -> None:
        """Inside a write transaction (so writers across processes take turns): raise the marker to
        the number of recorded starts. Rows only ever leave 'starting' (release deletes only those),
        so this count never goes down while the database is intact."""
        if self._marker is None:
            return
        # Counting rows scans the table and the marker is a file: both cost more than the start itself
        # once the ledger is large. The marker is a lower bound, so it is exact up to 10 starts and
        # then raised every ~10% of growth; emptying or truncating the ledger is still caught.
        self._since_marked += 1
        if self._marked_at >= 10 and self._since_marked < self._marked_at // 10 and os.path.lexists(self._marker):
            return
        count = _recorded_starts(db)
        marked = self._marked() if os.path.lexists(self._marker) else -1
        if count > marked:
            fd, tmp = tempfile.mkstemp(prefix=f".{MARKER_FILE}.", dir=self._marker.parent)
            with open(fd, "w", encoding="ascii") as handle:
                handle.write(f"{count}\n")
            os.replace(tmp, self._marker)  # replaces a planted link itself, never its target
        self._marked_at, self._since_marked = max(count, marked), 0

    def _marked(self) -> int:
        assert self._marker is not None
        try:
            fd = os.open(self._marker, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise UnsafeStateDir(f"cannot read {self._marker} ({exc.strerror}): remove it if it is not a file of "
                                 "yours") from None
        with open(fd, encoding="ascii", errors="replace") as handle:
            text = handle.read(64).strip()
        if not text.isdigit():
            raise LedgerRowsLost(f"{self._marker} should hold the number of starts this ledger has recorded, "
                                 f"but holds {text[:20]!r}: restore it, or remove it if you know the ledger is whole")
        return int(text)

    def check_intact(self) -> None:
        """Refuse a ledger with fewer recorded starts than its marker remembers (see LedgerRowsLost)."""
        if self._marker is None:
            return
        marked = self._marked()
        with self._read() as db:
            count = _recorded_starts(db)
        if count < marked:
            raise LedgerRowsLost(
                f"the ledger {self.path} holds {count} recorded start(s) but once held {marked} ({self._marker}): "
                "it lost rows (emptied, truncated or replaced), so it cannot tell who was already invited and "
                f"nothing will be started; restore it from a backup, or move both files aside to start afresh"
            )

    # -- writes ---------------------------------------------------------------------------------

    def reserve(
        self,
        *,
        owner: str = LOCAL_OWNER,
        external_id: str | None = None,
        display_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: str | None = None,
        locale: str | None = None,
        unless_known: bool = False,
        on_reserved: Callable[[Connection, int], None] | None = None,
    ) -> int | LedgerEntry:
        """Write a 'starting' row before a start is sent; returns its seq for confirm/release/mark_unknown.

        With `unless_known`, an existing row for the same external_id is returned instead, checked
        and written in one transaction: two batches racing on one ledger cannot both invite someone.
        """
        stamp = now_iso()
        with self._tx() as db:
            if unless_known and external_id is not None:
                row = db.execute(
                    """SELECT * FROM interviews WHERE base_url = ? AND owner = ? AND external_id = ?
                       AND status != 'not_started' ORDER BY seq DESC LIMIT 1""",
                    (self.base_url, owner, external_id),
                ).fetchone()
                if row is not None:
                    return _entry(row)
            seq = int(db.execute(
                """INSERT INTO interviews (interview_id, base_url, owner, external_id, display_name, metadata,
                       mode, locale, status, created_at, updated_at, reserved_by)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?, ?) RETURNING seq""",
                (f"pending-{uuid.uuid4()}", self.base_url, owner, external_id, display_name,
                 json.dumps(metadata) if metadata is not None else None, mode, locale, stamp, stamp, PROCESS),
            ).fetchone()[0])
            if self.postgres:  # who it is, searchable at once (SQLite's triggers do this)
                _pg_index(db, seq, (external_id, display_name, None, None, None))
            if on_reserved is not None:  # e.g. a batch job links its row to this reservation, atomically
                on_reserved(db, seq)
            return seq

    def confirm(self, seq: int, *, interview_id: str, session_token: str, initial_message: str | None) -> None:
        """Koji started it: the reserved row becomes the interview, with its token."""
        with self._tx() as db:
            db.execute(
                """UPDATE interviews SET interview_id = ?, session_token = ?, initial_message = ?,
                       status = 'active', updated_at = ? WHERE seq = ?""",
                (interview_id, session_token, initial_message, now_iso(), seq),
            )
            self._note_starts(db)

    def release(self, seq: int) -> None:
        """Koji surely did not start it (rejected, or never sent): forget the reservation."""
        with self._tx() as db:
            db.execute("DELETE FROM interviews WHERE seq = ? AND status = 'starting'", (seq,))

    def mark_unknown(self, seq: int, note: str) -> str:
        """The request may have reached Koji: keep the row as 'unknown' for the user to reconcile."""
        placeholder = f"unknown-{uuid.uuid4()}"
        with self._tx() as db:
            db.execute(
                "UPDATE interviews SET interview_id = ?, status = 'unknown', note = ?, updated_at = ? WHERE seq = ?",
                (placeholder, note, now_iso(), seq),
            )
            self._note_starts(db)
        return placeholder

    def update_status(
        self, interview_id: str, owner: str, status: str, *, completion: dict[str, Any] | None = None
    ) -> None:
        stamp = now_iso()
        with self._tx() as db:
            if status == "completed":
                db.execute(
                    """UPDATE interviews SET status = ?, updated_at = ?, completion = COALESCE(?, completion),
                           completed_at = COALESCE(completed_at, ?)
                       WHERE base_url = ? AND owner = ? AND interview_id = ?""",
                    (status, stamp, json.dumps(completion) if completion else None, stamp,
                     self.base_url, owner, interview_id),
                )
            else:
                db.execute(
                    """UPDATE interviews SET status = ?, updated_at = ?
                       WHERE base_url = ? AND owner = ? AND interview_id = ? AND status != 'completed'""",
                    (status, stamp, self.base_url, owner, interview_id),
                )

    def resolve(self, key: str, *, started_id: str | None, by: str) -> tuple[LedgerEntry, LedgerEntry]:
        """Settle an 'unknown' or 'starting' row by hand; returns (before, after).

        `key` is the row's interview id (its `unknown-…`/`pending-…` placeholder), its ledger row number,
        or the external_id of a participant whose start is unsettled.
        With `started_id` the row becomes that interview, without a session token (Koji gives it only
        to the caller that started it); without, it becomes 'not_started' and frees its external_id.
        """
        with self._tx() as db:
            if key.isdigit():
                rows = db.execute("SELECT * FROM interviews WHERE seq = ?", (int(key),)).fetchall()
            else:
                rows = db.execute(
                    "SELECT * FROM interviews WHERE interview_id = ? OR resolved_from = ? ORDER BY seq", (key, key)
                ).fetchall()
                if not rows:  # the participant's external_id, as the batch CSV names them
                    marks = ", ".join("?" for _ in UNSETTLED)
                    rows = db.execute(f"SELECT * FROM interviews WHERE external_id = ? AND status IN ({marks}) "
                                      "ORDER BY seq", (key, *UNSETTLED)).fetchall()
            if not rows:
                raise ResolveError(f"no row {key!r} in the ledger at {self.path}: give the unknown-… or pending-… id "
                                   "(or the ledger row number, or the participant's external_id) that batch and list_interviews show")
            if len(rows) > 1:
                raise ResolveError(f"{key!r} matches {len(rows)} rows (started on different base URLs): give the "
                                   f"row number instead ({', '.join(str(r['seq']) for r in rows)})")
            before = _entry(rows[0])
            if before.status not in UNSETTLED:
                done = (f" by {before.resolved_by} at {before.resolved_at}" if before.resolved_by else "")
                raise ResolveError(f"row {before.seq} ({before.interview_id}) is '{before.status}'{done}; only "
                                   "rows whose outcome is unknown ('unknown' or 'starting') can be resolved")
            stamp = now_iso()
            if started_id is None:
                db.execute(
                    """UPDATE interviews SET status = 'not_started', resolved_by = ?, resolved_at = ?,
                           resolved_from = interview_id, updated_at = ? WHERE seq = ?""",
                    (by, stamp, stamp, before.seq),
                )
            else:
                taken = db.execute(
                    "SELECT seq FROM interviews WHERE base_url = ? AND interview_id = ?",
                    (rows[0]["base_url"], started_id),
                ).fetchone()
                if taken is not None:
                    raise ResolveError(f"interview {started_id} is already in the ledger (row {taken['seq']}); "
                                       "each interview can settle only one unknown start")
                db.execute(
                    """UPDATE interviews SET interview_id = ?, status = 'active', session_token = NULL,
                           resolved_by = ?, resolved_at = ?, resolved_from = interview_id, updated_at = ?
                       WHERE seq = ?""",
                    (started_id, by, stamp, stamp, before.seq),
                )
            self._note_starts(db)
            after = _entry(db.execute("SELECT * FROM interviews WHERE seq = ?", (before.seq,)).fetchone())
        return before, after

    def touch(self, interview_id: str, owner: str) -> None:
        """Record activity (a relayed message) without changing the status."""
        with self._tx() as db:
            db.execute(
                "UPDATE interviews SET updated_at = ? WHERE base_url = ? AND owner = ? AND interview_id = ?",
                (now_iso(), self.base_url, owner, interview_id),
            )

    def index_text(self, interview_id: str, owner: str, *, summary: str, themes: str, transcript: str) -> bool:
        """Make what Koji said about an interview searchable; False if the ledger does not hold it."""
        with self._tx() as db:
            row = db.execute(
                f"""SELECT i.seq, i.external_id, i.display_name, t.summary, t.themes, t.transcript
                    FROM interviews i LEFT JOIN interview_text t ON {'t.seq' if self.postgres else 't.rowid'} = i.seq
                    WHERE i.base_url = ? AND i.owner = ? AND i.interview_id = ?""",
                (self.base_url, owner, interview_id),
            ).fetchone()
            if row is None:
                return False
            if (row["summary"], row["themes"], row["transcript"]) != (summary, themes, transcript):
                if self.postgres:
                    _pg_index(db, row["seq"], (row["external_id"], row["display_name"], summary, themes, transcript))
                else:
                    db.execute(
                        """INSERT OR REPLACE INTO interview_text (rowid, external_id, display_name, summary, themes,
                               transcript)
                           SELECT seq, external_id, display_name, ?, ?, ? FROM interviews WHERE seq = ?""",
                        (summary, themes, transcript, row["seq"]),
                    )
        return True

    # -- reads ----------------------------------------------------------------------------------

    def search(self, owner: str, query: str, *, limit: int = SEARCH_LIMIT) -> list[LedgerEntry]:
        """The owner's interviews matching `query` (plain words, never FTS5 syntax), best first.

        Rows without a real interview id ('starting', 'unknown') are left out: nothing could be read.
        """
        match = pg_tsquery(query) if self.postgres else fts_match(query)
        if match is None:
            return []
        if self.postgres:
            ranked = "t.doc @@ to_tsquery('simple', ?)"
            rank = f"ts_rank('{_PG_WEIGHTS}'::float4[], t.doc, to_tsquery('simple', ?)) DESC"
            sql = f"""SELECT i.* FROM interview_text t JOIN interviews i ON i.seq = t.seq
                      WHERE {ranked} AND i.base_url = ? AND i.owner = ? AND i.status NOT IN ('starting', 'unknown')
                      ORDER BY lower(coalesce(i.external_id, '')) = lower(?) DESC, {rank}, i.seq DESC LIMIT ?"""
            args: tuple[Any, ...] = (match, self.base_url, owner, query.strip(), match, limit)
        else:
            sql = f"""SELECT i.* FROM interview_text JOIN interviews i ON i.seq = interview_text.rowid
                      WHERE interview_text MATCH ? AND i.base_url = ? AND i.owner = ?
                        AND i.status NOT IN ('starting', 'unknown')
                      ORDER BY lower(coalesce(i.external_id, '')) = lower(?) DESC,
                               bm25(interview_text, {", ".join(map(str, SEARCH_WEIGHTS))}), i.seq DESC
                      LIMIT ?"""
            args = (match, self.base_url, owner, query.strip(), limit)
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [_entry(row) for row in rows]

    def get(self, interview_id: str, owner: str = LOCAL_OWNER) -> LedgerEntry | None:
        with self._read() as db:
            row = db.execute(
                "SELECT * FROM interviews WHERE base_url = ? AND owner = ? AND interview_id = ?",
                (self.base_url, owner, interview_id),
            ).fetchone()
        return _entry(row) if row else None

    def get_row(self, seq: int) -> LedgerEntry | None:
        """A row by its number (e.g. a reservation another process holds), or None once released."""
        with self._read() as db:
            row = db.execute("SELECT * FROM interviews WHERE seq = ?", (seq,)).fetchone()
        return _entry(row) if row else None

    def knows(self, interview_id: str, owner: str = LOCAL_OWNER) -> bool:
        """Whether this id is (or was, before `ledger resolve` settled it) one of the owner's rows."""
        with self._read() as db:
            row = db.execute(
                "SELECT 1 FROM interviews WHERE base_url = ? AND owner = ? AND (interview_id = ? OR resolved_from = ?)",
                (self.base_url, owner, interview_id, interview_id),
            ).fetchone()
        return row is not None

    def find_by_external_id(self, external_id: str, owner: str = LOCAL_OWNER) -> list[LedgerEntry]:
        """The interviews that hold this external_id, newest first (settled 'not_started' rows do not)."""
        with self._read() as db:
            rows = db.execute(
                """SELECT * FROM interviews WHERE base_url = ? AND owner = ? AND external_id = ?
                   AND status != 'not_started' ORDER BY seq DESC""",
                (self.base_url, owner, external_id),
            ).fetchall()
        return [_entry(row) for row in rows]

    def list(
        self,
        owner: str = LOCAL_OWNER,
        *,
        status: str | None = None,
        external_id: str | None = None,
        limit: int = 20,
        before_seq: int | None = None,
    ) -> tuple[list[LedgerEntry], int]:
        """Newest first. Returns (page, total matching ignoring the cursor)."""
        where = ["base_url = ?", "owner = ?"]
        args: list[Any] = [self.base_url, owner]
        if status:
            where.append("status = ?")
            args.append(status)
        if external_id:
            where.append("external_id = ?")
            args.append(external_id)
        clause = " AND ".join(where)
        with self._read() as db:
            total = db.execute(f"SELECT COUNT(*) FROM interviews WHERE {clause}", args).fetchone()[0]
            page_clause = clause + (" AND seq < ?" if before_seq is not None else "")
            page_args = [*args, before_seq] if before_seq is not None else args
            rows = db.execute(
                f"SELECT * FROM interviews WHERE {page_clause} ORDER BY seq DESC LIMIT ?", [*page_args, limit]
            ).fetchall()
        return [_entry(row) for row in rows], total

    def count(self) -> tuple[int, int]:
        """(interviews started on this base URL, interviews in the whole ledger), all owners."""
        with self._read() as db:
            here = db.execute("SELECT COUNT(*) FROM interviews WHERE base_url = ?", (self.base_url,)).fetchone()[0]
            total = db.execute("SELECT COUNT(*) FROM interviews").fetchone()[0]
        return int(here), int(total)


def fts_match(query: str) -> str | None:
    """Plain user text as an FTS5 query that cannot be FTS5 syntax; None when it holds no words.

    Each whitespace-separated chunk with a letter or digit becomes a quoted phrase (quotes doubled);
    the phrases are OR-ed, so bm25 ranks interviews matching more of them first. A phrase whose last
    word has 3+ characters also matches as a prefix ("dash" finds "dashboards"); shorter ones match
    whole words, so "u-1" is not "u-10" and "a" does not scan every word starting with a.
    `NEAR(`, `OR`, `*`, `-` or `"` in the text are just characters inside a phrase (or dropped).
    """
    phrases = []
    for chunk in clean_koji_text(query, 1_000).split():
        words = _WORDS.findall(chunk)
        if words:
            phrases.append('"' + chunk.replace('"', '""') + '"' + ("*" if len(words[-1]) >= 3 else ""))
    return " OR ".join(phrases[:MAX_SEARCH_WORDS]) or None


def pg_tsquery(query: str) -> str | None:
    """fts_match's twin for PostgreSQL: the same phrases (words folded as `_fold` folds the index), as
    a tsquery of quoted lexemes that cannot be tsquery syntax; the same prefix rule."""
    phrases = []
    for chunk in clean_koji_text(query, 1_000).split():
        words = _fold(chunk).split()
        if words:
            phrases.append(" <-> ".join(f"'{word}'" for word in words) + (":*" if len(words[-1]) >= 3 else ""))
    return " | ".join(phrases[:MAX_SEARCH_WORDS]) or None


def _fold(text: str | None) -> str:
    """Lower case, without diacritics, letters and digits only, one space between words (as FTS5's
    `unicode61 remove_diacritics 2` tokenizer sees text)."""
    decomposed = unicodedata.normalize("NFKD", (text or "").lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(_WORDS.findall(plain))


def _pg_index(db: Connection, seq: int, texts: tuple[str | None, ...]) -> None:
    """Write an interview's searchable text on PostgreSQL: who (weight A), what it was about (B), the transcript (D)."""
    external_id, display_name, summary, themes, transcript = texts
    db.execute(
        """INSERT INTO interview_text (seq, summary, themes, transcript, doc)
           VALUES (?, ?, ?, ?, setweight(to_tsvector('simple', ?), 'A') || setweight(to_tsvector('simple', ?), 'B')
                               || setweight(to_tsvector('simple', ?), 'D'))
           ON CONFLICT (seq) DO UPDATE SET summary = excluded.summary, themes = excluded.themes,
               transcript = excluded.transcript, doc = excluded.doc""",
        (seq, summary, themes, transcript, _fold(f"{external_id or ''} {display_name or ''}"),
         _fold(f"{summary or ''} {themes or ''}"), _fold(transcript)),
    )


def _recorded_starts(db: Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM interviews WHERE status != 'starting'").fetchone()[0])


def check_state_dir(directory: Path) -> None:
    """Refuse a state dir someone else owns or can write: they could plant or swap the ledger's files."""
    if os.name == "nt":  # ownership and mode bits mean something else there; the ACLs of the user profile apply
        return
    info = directory.stat()
    if info.st_uid != os.geteuid():
        raise UnsafeStateDir(
            f"state dir {directory} belongs to {_user(info.st_uid)}, not to you ({_user(os.geteuid())}): others "
            f"could read the session tokens in it; use a directory of your own (KOJI_MCP_STATE_DIR or --state-dir)"
        )
    if info.st_mode & 0o022:
        raise UnsafeStateDir(
            f"state dir {directory} is writable by others (mode {stat.S_IMODE(info.st_mode):o}): they could "
            f"plant files the ledger would use; run `chmod 700 {directory}`"
        )


def _check_file(path: Path) -> None:
    """A ledger file must be a plain file of ours; never follow a symlink to somewhere else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise UnsafeStateDir(
            f"{path} is a symbolic link; koji-mcp does not follow links for its ledger: remove it "
            f"(`rm {path}`) or use another state dir"
        )
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeStateDir(f"{path} is not a regular file: move it aside (`mv {path} {path}.bak`)")
    if os.name != "nt" and info.st_uid != os.geteuid():
        raise UnsafeStateDir(
            f"{path} belongs to {_user(info.st_uid)}, not to you ({_user(os.geteuid())}): it could receive the "
            f"session tokens; remove it (`rm {path}`) if you do not know why it is there"
        )


def _prepare_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite would honour the umask).

    O_EXCL | O_NOFOLLOW: a symlink planted at the path is never followed (nor its target created);
    the checks then refuse it, and any side file (-wal, -shm, -journal) that is not ours.
    """
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(path, flags, 0o600))
    except FileExistsError:
        pass
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILES)):
        _check_file(candidate)
    os.chmod(path, 0o600)


def _user(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def _entry(row: Any) -> LedgerEntry:
    return LedgerEntry(
        interview_id=row["interview_id"],
        owner=row["owner"],
        status=row["status"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        session_token=row["session_token"],
        external_id=row["external_id"],
        display_name=row["display_name"],
        metadata=json.loads(row["metadata"]) if row["metadata"] else None,
        mode=row["mode"],
        locale=row["locale"],
        initial_message=row["initial_message"],
        completion=json.loads(row["completion"]) if row["completion"] else None,
        note=row["note"],
        completed_at=row["completed_at"],
        seq=row["seq"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        resolved_from=row["resolved_from"],
        reserved_by=row["reserved_by"],
    )
