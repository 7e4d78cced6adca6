"""One line instead of a traceback: what the CLI says when the state directory or its ledger fails.

`batch` and `serve` open the ledger before doing anything else; whatever goes wrong there (a
directory that cannot be created or written, a file that is not a database, a ledger from a newer
koji-mcp, a database another process holds locked) is turned here into one line that says how to
fix it, and an exit code: 2 for a state directory that cannot be used as configured, 1 for a lock
that may clear by itself.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from koji_mcp.config import EXIT_USAGE, MEMORY_STATE_DIR
from koji_mcp.interviews.ledger import LEDGER_FILE, LedgerSchemaError, StorageError

EXIT_FAILED = 1
STATE_DIR_HINT = "set --state-dir (or KOJI_MCP_STATE_DIR) to another directory"


def single(exc: BaseException) -> BaseException:
    """The one exception inside (nested) exception groups of one, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def ledger_failure(exc: BaseException, state_dir: str) -> tuple[str, int] | None:
    """(one line, exit code) for a state-directory or ledger failure; None for anything else."""
    exc = single(exc)
    if isinstance(exc, StorageError) and isinstance(exc.__cause__, sqlite3.Error):
        exc = exc.__cause__  # the ledger wraps SQLite's failures; explain the SQLite one
    where = "the in-memory ledger" if state_dir == MEMORY_STATE_DIR else \
        f"the ledger {Path(state_dir).expanduser() / LEDGER_FILE}"
    if isinstance(exc, LedgerSchemaError):
        return f"{exc}, or {STATE_DIR_HINT}", EXIT_USAGE
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return (f"{where} is locked by another process (another koji-mcp batch or server?); let it finish, "
                "then try again"), EXIT_FAILED
    if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in str(exc) or "readonly" in str(exc)):
        return (f"{where} cannot be opened for writing ({exc}); make the state directory writable, or "
                f"{STATE_DIR_HINT}"), EXIT_USAGE
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
        return (f"{where} is not a readable SQLite database ({exc}): move it aside (it may hold session "
                f"tokens, keep it private) or {STATE_DIR_HINT}"), EXIT_USAGE
    if isinstance(exc, sqlite3.Error):
        return f"{where} cannot be used ({exc}); check the state directory, or {STATE_DIR_HINT}", EXIT_FAILED
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = exc.strerror or type(exc).__name__
        return (f"cannot use the state directory {state_dir}: {reason} ({exc.filename}); {STATE_DIR_HINT} "
                "that you can write"), EXIT_USAGE
    return None
