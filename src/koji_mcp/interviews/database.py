"""Where the ledger's rows live: SQLite (the embedded default) or PostgreSQL (shared by replicas).

Both engines sit behind one small interface — a write transaction (`tx`) and a read (`read`), each
yielding a connection whose `execute(sql, params)` takes the same `?`-style SQL — so the ledger, the
batch jobs, the OAuth store and the shared pacer run one copy of their SQL on either engine.

Writes take turns on both engines: SQLite's `BEGIN IMMEDIATE` holds the database's write lock, and
a PostgreSQL write transaction first takes one transaction-scoped advisory lock. Every "check, then
write" the ledger does (an external_id already invited? this batch row still ours to send?) is
therefore decided by the database, across processes and replicas, never by one process's memory.

PostgreSQL needs the optional extra: `pip install 'koji-mcp[postgres]'` (psycopg 3 and its pool).
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from koji_mcp.config import ConfigError

logger = logging.getLogger(__name__)

OPEN_BUSY_WAIT = 15.0  # seconds an SQLite opener keeps retrying while other processes hold the new database's lock
PG_CONNECT_WAIT = 5.0  # seconds `open` waits to reach PostgreSQL before carrying on (readiness says why not)
PG_CHECKOUT_WAIT = 3.0  # seconds a call waits for a pooled connection before it fails (nothing sent)
PG_FAIL_FAST = 5.0  # after a failed connection, calls fail at once for this long instead of waiting again
PG_RETRY_EVERY = 2.0  # seconds between attempts to reach PostgreSQL in the background
PG_POOL_MAX = 10  # connections per process; PostgreSQL's default max_connections is 100
PG_STATEMENT_TIMEOUT_MS = 15_000  # no ledger statement may hang a tool call (or hold the write lock) for long
WRITE_LOCK = 0x6B6F6A69  # "koji": the advisory lock PostgreSQL write transactions take turns on
MIGRATION_LOCK = 0x6B6F6A6A  # held while migrations are checked and applied


class StorageError(Exception):
    """The ledger could not be read or written. Raised before anything is sent, so nothing reached Koji."""

    outcome = "not_sent"

    def __init__(self, message: str, hint: str = "Check the state directory (KOJI_MCP_STATE_DIR: disk space, "
                 "permissions)") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint  # what to check, said after "Nothing was sent to Koji."


PG_HINT = "Check the ledger database (KOJI_MCP_DATABASE_URL: is PostgreSQL up, reachable and accepting connections?)"


class LedgerSchemaError(RuntimeError):
    """The ledger was written by a newer koji-mcp; this version must not touch it."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """What `tx()` and `read()` yield: sqlite3's connection, or the PostgreSQL adapter below."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Cursor: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...


def is_postgres_url(url: str | None) -> bool:
    return bool(url) and urlsplit(url or "").scheme in ("postgresql", "postgres")


def shown_url(url: str) -> str:
    """A database URL as it may be shown or logged: no password (nor any query, which may hold one)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = (f"{parts.username}@" if parts.username else "") + host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class Database:
    """The interface; see SqliteDatabase and PostgresDatabase."""

    dialect: str
    where: str  # for messages: a file path, or the URL without its password

    def tx(self) -> Any:  # a context manager yielding a Connection, committing at the end
        raise NotImplementedError

    def read(self) -> Any:  # a context manager yielding a Connection
        raise NotImplementedError

    def migrate(self, scripts: list[str]) -> None:
        raise NotImplementedError

    def readiness(self) -> str | None:
        """None when reachable and migrated; else one line saying why not (no secrets)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


# -- SQLite ----------------------------------------------------------------------------------------


class SqliteDatabase(Database):
    """One connection and one lock (writes are tiny); WAL, so readers in other processes never wait."""

    dialect = "sqlite"

    def __init__(self, path: str, *, memory: bool) -> None:
        self.where = path
        self._lock = threading.Lock()
        self._version = 0
        with _sqlite_errors("opened"):
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA busy_timeout=10000")
            if not memory:
                # Switching a new database to WAL needs its exclusive lock, and SQLite answers "database is
                # locked" at once (no busy wait) when another opener holds it: retry for a bounded time.
                _retry_busy(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
                self._db.execute("PRAGMA synchronous=NORMAL")

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; SQLite's failures come out as StorageError."""
        with self._lock, _sqlite_errors("written"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _sqlite_errors("read"):
            yield self._db

    def migrate(self, scripts: list[str]) -> None:
        _retry_busy(lambda: self._migrate(scripts))

    def _migrate(self, scripts: list[str]) -> None:
        with self._lock:
            if self._db.execute("PRAGMA user_version").fetchone()[0] == len(scripts):
                self._version = len(scripts)
                return  # current: no write lock needed (the common case at every start)
        with self.tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            _refuse_newer(version, len(scripts), self.where)
            for number, script in enumerate(scripts[version:], start=version + 1):
                for statement in _sqlite_statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        self._version = len(scripts)

    def readiness(self) -> str | None:
        try:
            with self.read() as db:
                db.execute("SELECT 1").fetchone()
        except StorageError as exc:
            return exc.message
        return None if self._version else "the ledger's schema is not in place yet"

    def close(self) -> None:
        with self._lock:
            self._db.close()


@contextmanager
def _sqlite_errors(verb: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"the local ledger could not be {verb} ({exc})") from exc


def _sqlite_statements(script: str) -> Iterator[str]:
    """A migration's statements; a trigger's body (`BEGIN ...; END`) stays one statement."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def _retry_busy(action: Callable[[], object], wait: float = OPEN_BUSY_WAIT) -> None:
    """Run `action`, retrying with jittered backoff while SQLite reports the database busy or locked."""
    deadline = time.monotonic() + wait
    pause = 0.01
    while True:
        try:
            action()
            return
        except (sqlite3.OperationalError, StorageError) as exc:
            cause = exc.__cause__ if isinstance(exc, StorageError) else exc
            code = getattr(cause, "sqlite_errorcode", 0) & 0xFF
            if code not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or time.monotonic() >= deadline:
                raise
        time.sleep(pause + random.uniform(0, pause))
        pause = min(pause * 2, 0.2)


def _refuse_newer(version: int, known: int, where: str) -> None:
    if version > known:
        raise LedgerSchemaError(
            f"the ledger at {where} was written by a newer koji-mcp (schema v{version}, this one knows "
            f"v{known}); upgrade koji-mcp"
        )


# -- PostgreSQL ------------------------------------------------------------------------------------


@lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """The ledger's `?` placeholders as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class Row(tuple):  # noqa: SLOT000 - psycopg rows: by position, by unpacking, and by column name like sqlite3.Row
    _names: dict[str, int]

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


@lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"_names": {name: index for index, name in enumerate(names)}})


def _row_factory(cursor: Any) -> type[Row]:
    return _row_class(tuple(column.name for column in cursor.description or ()))


class _PgConnection:
    """A psycopg connection speaking the ledger's `?` SQL."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(pg_sql(sql), _no_nul(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any:
        with self._conn.cursor() as cursor:
            cursor.executemany(pg_sql(sql), [_no_nul(row) for row in rows])
            return cursor


def _no_nul(params: Sequence[Any]) -> tuple[Any, ...]:
    """PostgreSQL text cannot hold NUL: it becomes U+FFFD, as SQLite would keep it, and nothing else changes."""
    return tuple(value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value
                 for value in params)


class PostgresDatabase(Database):
    """A psycopg 3 connection pool. Reaching the server and migrating happen at open, and — if the
    server is not reachable yet (a fresh deployment) — keep being retried in the background:
    until then every read or write raises StorageError (nothing is sent) and `readiness` says why."""

    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = PG_POOL_MAX) -> None:
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise ConfigError(
                "KOJI_MCP_DATABASE_URL is a PostgreSQL URL, but psycopg is not installed: "
                "pip install 'koji-mcp[postgres]'"
            ) from None
        self._psycopg = psycopg
        self._url = url
        self.where = shown_url(url)
        password = urlsplit(url).password or ""
        self._secrets = tuple(s for s in {password, unquote(password), url} if len(s) >= 4)
        self._down_until = 0.0  # after a failed connection: fail fast until then (see _connection)
        self._scripts: list[str] | None = None
        self._problem: str | None = "not connected yet"
        self._ready = threading.Event()
        self._closed = threading.Event()
        self._retrier: threading.Thread | None = None
        self._connect_args = {"autocommit": True, "connect_timeout": int(PG_CONNECT_WAIT), "application_name": "koji-mcp",
                              "options": f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"}
        self._pool = ConnectionPool(  # opened once the schema is in place (see _try_migrate)
            url,
            min_size=1,
            max_size=pool_size,
            open=False,
            timeout=PG_CHECKOUT_WAIT,
            configure=_read_committed,
            name="koji-mcp-ledger",
            kwargs={**self._connect_args, "row_factory": _row_factory},
            reconnect_failed=lambda _pool: logger.warning("the ledger database at %s is unreachable", self.where),
        )

    # -- connections ---------------------------------------------------------------------------

    @contextmanager
    def _connection(self, verb: str) -> Iterator[Any]:
        if not self._ready.is_set():
            raise StorageError(self._not_ready(), PG_HINT)
        if time.monotonic() < self._down_until:  # just failed to connect: say so at once, do not wait again
            raise StorageError(f"the ledger database at {self.where} could not be {verb} ({self._problem})", PG_HINT)
        try:
            with self._pool.connection() as conn:
                yield conn
        except Exception as exc:  # psycopg's errors, the pool's own timeout (PoolTimeout), a closed pool
            if not type(exc).__module__.startswith("psycopg"):
                raise
            if isinstance(exc, self._psycopg.OperationalError) or type(exc).__name__ == "PoolTimeout":
                self._problem = self._clean(exc)
                self._down_until = time.monotonic() + PG_FAIL_FAST
            raise StorageError(f"the ledger database at {self.where} could not be {verb} ({self._clean(exc)})",
                               PG_HINT) from exc

    def _clean(self, exc: BaseException) -> str:
        """psycopg's message on one line, without the URL or its password (psycopg may quote them)."""
        text = _one_line(exc)
        for secret in self._secrets:
            text = text.replace(secret, "…")
        return text

    @contextmanager
    def tx(self) -> Iterator[_PgConnection]:
        with self._connection("written") as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield _PgConnection(conn)

    @contextmanager
    def read(self) -> Iterator[_PgConnection]:
        with self._connection("read") as conn:
            yield _PgConnection(conn)

    @contextmanager
    def locked_row(self, verb: str) -> Iterator[_PgConnection]:
        """A transaction without the ledger's write lock (the pacer locks its own row)."""
        with self._connection(verb) as conn, conn.transaction():
            yield _PgConnection(conn)

    # -- schema --------------------------------------------------------------------------------

    def migrate(self, scripts: list[str]) -> None:
        """Reach the server and migrate, waiting up to PG_CONNECT_WAIT; if it cannot be reached yet,
        keep trying in the background. A newer schema is refused at once (LedgerSchemaError)."""
        self._scripts = scripts
        try:
            self._try_migrate()
        except StorageError as exc:
            self._problem = exc.message
            logger.warning("%s; retrying every %.0f s (/readyz answers 503 until then)", exc.message, PG_RETRY_EVERY)
            self._retrier = threading.Thread(target=self._retry_migrate, name="koji-mcp-ledger-connect", daemon=True)
            self._retrier.start()

    def _retry_migrate(self) -> None:
        while not self._closed.wait(PG_RETRY_EVERY):
            try:
                self._try_migrate()
                logger.info("the ledger database at %s is ready", self.where)
                return
            except StorageError as exc:
                self._problem = exc.message
            except LedgerSchemaError as exc:
                self._problem = str(exc)
                logger.error("%s", exc)
                return

    def _try_migrate(self) -> None:
        """One connection of its own (so a failure says why: no such database, wrong password, no server)."""
        assert self._scripts is not None
        try:
            connection = self._psycopg.connect(self._url, **self._connect_args)
            _read_committed(connection)
            self._migrate_on(connection)
        except self._psycopg.Error as exc:
            raise StorageError(f"the ledger database at {self.where} is not ready: it could not be reached or "
                               f"migrated ({self._clean(exc)})", PG_HINT) from None
        self._pool.open(wait=False)
        self._problem = None
        self._ready.set()

    def _migrate_on(self, connection: Any) -> None:
        assert self._scripts is not None
        with connection as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))  # one replica migrates, the others wait
            conn.execute("CREATE TABLE IF NOT EXISTS koji_mcp_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM koji_mcp_schema").fetchone()
            version = int(row[0] or 0)
            _refuse_newer(version, len(self._scripts), self.where)
            for number, script in enumerate(self._scripts[version:], start=version + 1):
                conn.execute(script)
                conn.execute("INSERT INTO koji_mcp_schema (version) VALUES (%s)", (number,))

    def _not_ready(self) -> str:
        problem = self._problem or "not connected yet"
        return problem if problem.startswith("the ledger database at") else \
            f"the ledger database at {self.where} is not ready: {problem}"

    def readiness(self) -> str | None:
        if not self._ready.is_set():
            return self._not_ready()
        try:
            with self.read() as db:
                version = db.execute("SELECT max(version) FROM koji_mcp_schema").fetchone()[0]
        except StorageError as exc:
            return exc.message
        if self._scripts is not None and version != len(self._scripts):
            return f"the ledger database at {self.where} is at schema v{version}, this koji-mcp needs v{len(self._scripts)}"
        return None

    def close(self) -> None:
        self._closed.set()
        self._pool.close()


def _read_committed(conn: Any) -> None:
    """Every check-then-write relies on each statement seeing what was committed before the write lock was
    granted: READ COMMITTED, whatever the server's or role's default_transaction_isolation says."""
    import psycopg

    conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def open_database(location: str, *, postgres: bool, memory: bool = False) -> Database:
    return PostgresDatabase(location) if postgres else SqliteDatabase(location, memory=memory)
