"""One Koji rate limit across replicas: the pacer's schedule for an API key as a row of the ledger database.

Koji counts requests per API key, whichever replica sends them. With PostgreSQL every replica's
pacer reads and writes the same row (`pacer`), locked for the length of one decision, with the
database's clock, so N replicas together are spaced as one server would be, and what Koji's
`X-RateLimit-*` headers or a 429 teach one replica (the limit, a pause) holds for all of them.
The key itself is never stored: the row is named by `KojiClient.key_id`, a hash of the base URL and key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from koji_mcp.interviews.database import PostgresDatabase
from koji_mcp.koji.ratelimit import PaceState

T = TypeVar("T")

_CLOCK = "extract(epoch from clock_timestamp())::float8"


class DatabasePaceStore:
    """A PaceStore (koji/ratelimit.py) on PostgreSQL: each update is one transaction holding the key's row lock."""

    blocking = True  # Pacer.claim asks it from a worker thread

    def __init__(self, db: PostgresDatabase, key_id: str) -> None:
        self._db = db
        self.key_id = key_id

    def update(self, change: Callable[[PaceState, float], T]) -> T:
        with self._db.locked_row("paced") as conn:
            # Insert-or-touch takes the row's lock and returns it, with the database's clock, in one round trip.
            text, now = conn.execute(
                f"""INSERT INTO pacer (key_id, state, updated_at) VALUES (?, '{{}}', {_CLOCK})
                    ON CONFLICT (key_id) DO UPDATE SET key_id = excluded.key_id
                    RETURNING state, {_CLOCK}""",
                (self.key_id,),
            ).fetchone()
            state = PaceState.from_json(text)
            result = change(state, float(now))  # raising here rolls back: nothing is claimed
            conn.execute("UPDATE pacer SET state = ?, updated_at = ? WHERE key_id = ?",
                         (state.to_json(), float(now), self.key_id))
        return result

    def peek(self) -> tuple[PaceState, float]:
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_CLOCK}, (SELECT state FROM pacer WHERE key_id = ?)", (self.key_id,)).fetchone()
        return (PaceState.from_json(row[1]) if row[1] else PaceState()), float(row[0])
