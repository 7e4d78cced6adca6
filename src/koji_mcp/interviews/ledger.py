"""The ledger: a local SQLite record of every interview this server started.

Why it exists: Koji has no "list interviews" endpoint, and each interview's session token is a
credential that must never enter the model's context. The ledger holds both, survives restarts
and crashes (WAL; each write is its own transaction), and is readable only by its owner (0600).

Rows are scoped by `owner` (the authenticated HTTP client, or "local") and by the Koji base URL
they were started on, so a sandbox session never shows up next to real interviews.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from koji_mcp.config import MEMORY_STATE_DIR

LEDGER_FILE = "ledger.sqlite3"
LOCAL_OWNER = "local"

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
    # v2: batch jobs (interviews/jobs.py)
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
]

STATUSES = ("active", "ended", "completed", "expired", "unknown", "starting")
# "starting": written before the start request is sent, so a crash mid-request leaves a trace
# (it reads as "outcome unknown"); "unknown": the request may have reached Koji, no id came back.


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
        }


class Ledger:
    """Thread-safe access to the ledger database (one connection, one lock: writes are tiny)."""

    def __init__(self, path: str, base_url: str) -> None:
        self.path = path
        self.base_url = base_url
        self._lock = threading.Lock()
        if path != MEMORY_STATE_DIR:
            _prepare_file(Path(path))
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.row_factory = sqlite3.Row
        if path != MEMORY_STATE_DIR:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._migrate()

    @classmethod
    def open(cls, state_dir: str, base_url: str) -> Ledger:
        """Open (creating if needed) the ledger in `state_dir`; `:memory:` keeps it ephemeral."""
        if state_dir == MEMORY_STATE_DIR:
            return cls(MEMORY_STATE_DIR, base_url)
        directory = Path(state_dir).expanduser()
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(str(directory / LEDGER_FILE), base_url)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        with self._lock:
            if self._db.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS):
                return  # current: no write lock needed (the common case at every start)
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > len(_MIGRATIONS):
                raise RuntimeError(
                    f"the ledger at {self.path} was written by a newer koji-mcp (schema v{version}); upgrade koji-mcp"
                )
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")

    # -- writes ---------------------------------------------------------------------------------

    def record_start(
        self,
        *,
        interview_id: str,
        session_token: str | None,
        owner: str = LOCAL_OWNER,
        status: str = "active",
        external_id: str | None = None,
        display_name: str | None = None,
        metadata: dict[str, Any] | None = None,
        mode: str | None = None,
        locale: str | None = None,
        initial_message: str | None = None,
        note: str | None = None,
    ) -> LedgerEntry:
        stamp = now_iso()
        with self._tx() as db:
            db.execute(
                """INSERT INTO interviews (interview_id, base_url, owner, session_token, external_id,
                       display_name, metadata, mode, locale, status, initial_message, note,
                       created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (base_url, interview_id) DO UPDATE SET
                       session_token = excluded.session_token, status = excluded.status,
                       initial_message = excluded.initial_message, updated_at = excluded.updated_at""",
                (
                    interview_id, self.base_url, owner, session_token, external_id, display_name,
                    json.dumps(metadata) if metadata is not None else None, mode, locale, status,
                    initial_message, note, stamp, stamp,
                ),
            )
        entry = self.get(interview_id, owner)
        assert entry is not None
        return entry

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
        on_reserved: Callable[[sqlite3.Connection, int], None] | None = None,
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
                       ORDER BY seq DESC LIMIT 1""",
                    (self.base_url, owner, external_id),
                ).fetchone()
                if row is not None:
                    return _entry(row)
            cursor = db.execute(
                """INSERT INTO interviews (interview_id, base_url, owner, external_id, display_name, metadata,
                       mode, locale, status, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'starting', ?, ?)""",
                (f"pending-{uuid.uuid4()}", self.base_url, owner, external_id, display_name,
                 json.dumps(metadata) if metadata is not None else None, mode, locale, stamp, stamp),
            )
            seq = int(cursor.lastrowid or 0)
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

    def touch(self, interview_id: str, owner: str) -> None:
        """Record activity (a relayed message) without changing the status."""
        with self._tx() as db:
            db.execute(
                "UPDATE interviews SET updated_at = ? WHERE base_url = ? AND owner = ? AND interview_id = ?",
                (now_iso(), self.base_url, owner, interview_id),
            )

    # -- reads ----------------------------------------------------------------------------------

    def get(self, interview_id: str, owner: str = LOCAL_OWNER) -> LedgerEntry | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM interviews WHERE base_url = ? AND owner = ? AND interview_id = ?",
                (self.base_url, owner, interview_id),
            ).fetchone()
        return _entry(row) if row else None

    def find_by_external_id(self, external_id: str, owner: str = LOCAL_OWNER) -> list[LedgerEntry]:
        with self._lock:
            rows = self._db.execute(
                """SELECT * FROM interviews WHERE base_url = ? AND owner = ? AND external_id = ?
                   ORDER BY seq DESC""",
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
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM interviews WHERE {clause}", args).fetchone()[0]
            page_clause = clause + (" AND seq < ?" if before_seq is not None else "")
            page_args = [*args, before_seq] if before_seq is not None else args
            rows = self._db.execute(
                f"SELECT * FROM interviews WHERE {page_clause} ORDER BY seq DESC LIMIT ?", [*page_args, limit]
            ).fetchall()
        return [_entry(row) for row in rows], total


def _prepare_file(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite would honour the umask)."""
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


def _entry(row: sqlite3.Row) -> LedgerEntry:
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
    )
