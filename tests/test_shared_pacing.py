"""One Koji rate limit across replicas: pacers sharing one PostgreSQL row (interviews/shared_pacing.py).

Two Pacer objects stand for two replicas (each with its own tracker, as each process has); they share
only the database. Real time, a short window: what matters is that their sends, together, never
exceed the limit in any window, and that what one learns from Koji holds for the other.
"""

from __future__ import annotations

import threading
import time

import pytest

from koji_mcp.interviews.database import PostgresDatabase
from koji_mcp.interviews.ledger import Ledger
from koji_mcp.interviews.shared_pacing import DatabasePaceStore
from koji_mcp.koji.ratelimit import PaceState, Pacer, RateLimitTracker, WaitTooLong

WINDOW, LIMIT = 1.0, 10


def replicas(url: str, count: int = 2, key: str = "k1") -> tuple[Ledger, list[Pacer]]:
    ledger = Ledger.open(":memory:", "http://k", database_url=url)  # migrates: the pacer table exists
    assert isinstance(ledger.db, PostgresDatabase)
    pacers = []
    for _ in range(count):
        tracker = RateLimitTracker()
        tracker.observe({"x-ratelimit-limit": str(LIMIT), "x-ratelimit-remaining": str(LIMIT)})
        pacers.append(Pacer(tracker, window=WINDOW, store=DatabasePaceStore(ledger.db, key)))
    return ledger, pacers


def test_two_replicas_together_never_exceed_the_limit_in_any_window(postgres_url) -> None:
    ledger, pacers = replicas(postgres_url)
    sends: list[float] = []
    lock = threading.Lock()

    def replica(pacer: Pacer) -> None:
        for _ in range(15):
            time.sleep(pacer.reserve(max_wait=30))
            with lock:
                sends.append(time.monotonic())

    threads = [threading.Thread(target=replica, args=(p,)) for p in pacers for _ in range(2)]  # 4 senders
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ledger.close()
    sends.sort()
    assert len(sends) == 60
    busiest = max(sum(1 for s in sends if start <= s < start + WINDOW) for start in sends)
    assert busiest <= LIMIT, busiest
    # 60 sends at 10 per 1 s window cannot take less than ~5 windows; spread evenly they take about 6
    assert sends[-1] - began >= 5 * WINDOW * 0.95


def test_what_koji_tells_one_replica_holds_for_all(postgres_url) -> None:
    ledger, (a, b) = replicas(postgres_url)
    a.observe(429, {"retry-after": "5"}, 5.0)  # Koji told replica a to wait 5 s
    with pytest.raises(WaitTooLong) as waited:
        b.reserve(max_wait=1.0)  # replica b, which never saw the 429, waits as well
    assert 4.5 <= waited.value.wait <= 5.0
    state, _ = b.store.peek()
    ledger.close()
    assert state.limit == LIMIT and state.blocked_until > 0


def test_a_refused_reservation_claims_nothing_and_keys_are_apart(postgres_url) -> None:
    ledger, (a,) = replicas(postgres_url, count=1)
    _, (other,) = replicas(postgres_url, count=1, key="k2")
    for _ in range(LIMIT):
        a.reserve(max_wait=30)
    before, _ = a.store.peek()
    with pytest.raises(WaitTooLong):
        a.reserve(max_wait=0)
    after, _ = a.store.peek()
    assert after == before  # rolled back: the refused call took no slot
    assert other.reserve(max_wait=0) == 0.0  # another API key has its own schedule
    with ledger.db.read() as db:
        rows = db.execute("SELECT key_id, state FROM pacer ORDER BY key_id").fetchall()
    ledger.close()
    assert [r["key_id"] for r in rows] == ["k1", "k2"] and PaceState.from_json(rows[0]["state"]).limit == LIMIT
