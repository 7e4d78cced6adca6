"""What Koji's rate-limit headers say, and how long a 429 asks us to wait.

Koji allows 60 requests per minute per key over a sliding window and reports it on every response
with `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (a Unix timestamp). On a
429 the current docs send no `Retry-After`; the older ones did. We honour either.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar

import anyio
from email.utils import parsedate_to_datetime

logger = logging.getLogger(__name__)

MAX_RESET_WAIT = 120.0  # never trust a reset further away than two windows
LOGGED_LIMIT = 120  # up to this limit per window, each send is logged and the log caps a window at the limit


@dataclass
class RateLimitSnapshot:
    """The most recent rate-limit headers Koji sent (None until the first response)."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None


class RateLimitTracker:
    """Remembers Koji's latest rate-limit headers; shared by every call of one server."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.snapshot = RateLimitSnapshot()

    def observe(self, headers: Mapping[str, str]) -> None:
        limit = _int(headers.get("x-ratelimit-limit"))
        remaining = _int(headers.get("x-ratelimit-remaining"))
        reset = _float(headers.get("x-ratelimit-reset"))
        if limit is None and remaining is None and reset is None:
            return
        self.snapshot = RateLimitSnapshot(limit, remaining, reset)

    def retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Seconds a 429 asks us to wait: Retry-After first, else X-RateLimit-Reset − now."""
        now = self._clock()
        raw = headers.get("retry-after")
        if raw is not None:
            seconds = _float(raw)
            if seconds is None:
                try:
                    seconds = parsedate_to_datetime(raw).timestamp() - now
                except (TypeError, ValueError, IndexError, OverflowError):
                    seconds = None
            if seconds is not None:
                return min(max(seconds, 0.0), MAX_RESET_WAIT)
        reset = _float(headers.get("x-ratelimit-reset"))
        if reset is not None:
            return min(max(reset - now, 0.0), MAX_RESET_WAIT)
        return None


def _int(raw: str | None) -> int | None:
    value = _float(raw)
    return None if value is None else int(value)


def _float(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


DEFAULT_LIMIT = 60
DEFAULT_WINDOW = 60.0


class WaitTooLong(Exception):
    """Pacing would have to wait longer than the caller accepts; nothing was sent."""

    def __init__(self, wait: float, limit: int) -> None:
        super().__init__(f"wait {wait:.1f} s")
        self.wait = wait
        self.limit = limit


@dataclass
class PaceState:
    """The pacer's whole schedule for one API key: in memory (one process), or a row of the shared ledger
    database (every replica paces from it, so together they keep within Koji's limit)."""

    bucket_at: float | None = None  # GCRA "theoretical arrival time"
    interval: float | None = None  # the spacing `bucket_at` was built at
    sent: deque[float] = field(default_factory=deque)  # our send times in the last window, oldest first
    blocked_until: float = 0.0  # Koji said stop (429, or Remaining 0) until then
    limit: int | None = None  # Koji's X-RateLimit-Limit, as last seen by any sender of this key

    def to_json(self) -> str:
        data = {**asdict(self), "sent": [round(stamp, 4) for stamp in self.sent]}  # at most LOGGED_LIMIT
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> PaceState:
        try:
            data = json.loads(text)
            state = cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data and name != "sent"})
            state.sent = deque(float(stamp) for stamp in data.get("sent") or ())
            return state
        except (ValueError, TypeError):
            return cls()  # an unreadable schedule starts afresh (Koji's headers soon tighten it again)


T = TypeVar("T")


class PaceStore(Protocol):
    """Where one key's PaceState lives. `update` loads it, applies `change(state, now)` and saves it, as one
    atomic step against every other sender of the key (a raised exception saves nothing); `now` is the
    store's clock (the database's, when replicas share it, so their clocks need not agree)."""

    def update(self, change: Callable[[PaceState, float], T]) -> T: ...

    def peek(self) -> tuple[PaceState, float]: ...


class MemoryPaceStore:
    """One process's schedule (the default). No await inside `update`: safe under concurrency."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._state = PaceState()

    def update(self, change: Callable[[PaceState, float], T]) -> T:
        return change(self._state, self._clock())

    def peek(self) -> tuple[PaceState, float]:
        return self._state, self._clock()


def _spacing(window: float, limit: int, burst: int) -> float:
    """Seconds between sends. Up to LOGGED_LIMIT the send log caps each window at the limit; beyond it (a
    log that size would make a shared schedule slow to read and write) the spacing alone must: a burst b
    plus one send per interval T fits the limit in any window when T = window / (limit - b)."""
    if limit <= LOGGED_LIMIT:
        return window / limit
    return (window + 0.1 + 0.005 * window) / max(limit - burst, 1)  # the log's slack for transit and jitter


class Pacer:
    """Client-side pacing shared by every request of one server (single calls and batches alike), or
    of all replicas sharing one database (see PaceStore).

    Koji's limit is per key over a sliding window, and the key may be shared with the customer's
    own app. So we never burst the whole window: requests are spread at limit/window with a small
    burst allowance (a tenth of the limit), our own sends are capped at `limit` per window, and
    Koji's headers win when they say less is left (Remaining 0 → wait for Reset; 429 → wait as told).
    """

    def __init__(self, tracker: RateLimitTracker, clock: Callable[[], float] = time.time,
                 window: float = DEFAULT_WINDOW, store: PaceStore | None = None) -> None:
        self._tracker = tracker
        self.window = window
        self.store: PaceStore = store or MemoryPaceStore(clock)

    @property
    def limit(self) -> int:
        return self.store.peek()[0].limit or self._tracker.snapshot.limit or DEFAULT_LIMIT

    def reserve(self, max_wait: float) -> float:
        """Claim the next send slot; returns how long to sleep first."""
        return self.store.update(lambda state, now: self._reserve(state, now, max_wait))

    async def claim(self, max_wait: float) -> float:
        """`reserve` from async code: a store across the network (`blocking`) is asked from a worker thread,
        so the event loop keeps serving meanwhile; the in-memory one inline (no await: safe under concurrency)."""
        if not getattr(self.store, "blocking", False):
            return self.reserve(max_wait)
        return await anyio.to_thread.run_sync(self.reserve, max_wait)

    def _reserve(self, state: PaceState, now: float, max_wait: float) -> float:
        known = state.limit = state.limit or self._tracker.snapshot.limit  # shared once any sender knows it
        limit = max(known or DEFAULT_LIMIT, 1)
        # Until Koji's headers tell the real limit, allow the documented limit as one burst (the
        # window log still caps it); once known, spread requests and keep a tenth as burst.
        burst = max(1, limit // 10) if known else DEFAULT_LIMIT
        interval = _spacing(self.window, limit, burst)
        bucket_at = state.bucket_at
        if bucket_at is not None and state.interval and interval != state.interval:
            # The real limit became known (or changed): rescale the debt built up at the old pace.
            bucket_at = now + max(0.0, bucket_at - now) * interval / state.interval
        tat = max(bucket_at or now, now)
        at = max(now, tat - (burst - 1) * interval, state.blocked_until)
        sent = state.sent
        # Drop expired sends from the old end: O(1) per call (rebuilding the list cost O(sends per
        # window), ~1 ms a call at a few hundred calls/s against a generous limit).
        while sent and sent[0] <= now - self.window:
            sent.popleft()
        if limit <= LOGGED_LIMIT and len(sent) >= limit:
            # Koji's window starts when a request *arrives*: leave a little slack for transit and jitter.
            at = max(at, sent[-limit] + self.window + 0.1 + 0.005 * self.window)
        wait = max(0.0, at - now)
        if wait > max_wait:
            raise WaitTooLong(wait, limit)
        state.bucket_at, state.interval = max(tat, at) + interval, interval
        if limit <= LOGGED_LIMIT:
            sent.append(at)
            while len(sent) > limit:
                sent.popleft()
        else:
            sent.clear()
        return wait

    def estimate(self, count: int) -> float:
        """Seconds until `count` more requests could all be sent at the current pace (nothing is claimed)."""
        if count <= 0:
            return 0.0
        state, now = self.store.peek()
        known = state.limit or self._tracker.snapshot.limit
        limit = max(known or DEFAULT_LIMIT, 1)
        burst = max(1, limit // 10) if known else DEFAULT_LIMIT
        interval = _spacing(self.window, limit, burst)
        tat = max(state.bucket_at or now, now, state.blocked_until)
        free_now = max(0, burst - int((tat - now) / interval))
        start = max(now, state.blocked_until)
        return max(0.0, start - now) + max(0, count - free_now) * interval

    def observe(self, status: int, headers: Mapping[str, str], retry_after: float | None) -> None:
        """Let Koji's answer tighten the schedule (never loosen it), for every sender of this key."""
        snap = self._tracker.snapshot
        block = status == 429 or (snap.remaining is not None and snap.remaining <= 0 and snap.reset_at is not None)
        if not block and (snap.limit is None or snap.limit == self._seen_limit):
            return  # nothing new to share: no write per response
        self._seen_limit = snap.limit

        def tighten(state: PaceState, now: float) -> None:
            if snap.limit:
                state.limit = snap.limit
            if status == 429:
                state.blocked_until = max(state.blocked_until, now + (retry_after if retry_after is not None else 1.0))
            elif block and snap.reset_at is not None:
                state.blocked_until = max(state.blocked_until, min(snap.reset_at, now + MAX_RESET_WAIT))

        try:
            self.store.update(tighten)
        except Exception:  # a shared schedule out of reach must never turn Koji's answer into an error
            self._seen_limit = None
            logger.warning("could not share what Koji's rate-limit headers said with the other replicas")

    _seen_limit: int | None = None
