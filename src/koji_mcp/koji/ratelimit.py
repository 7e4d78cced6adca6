"""What Koji's rate-limit headers say, and how long a 429 asks us to wait.

Koji allows 60 requests per minute per key over a sliding window and reports it on every response
with `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (a Unix timestamp). On a
429 the current docs send no `Retry-After`; the older ones did. We honour either.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

MAX_RESET_WAIT = 120.0  # never trust a reset further away than two windows


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


class Pacer:
    """Client-side pacing shared by every request of one server (single calls and batches alike).

    Koji's limit is per key over a sliding window, and the key may be shared with the customer's
    own app. So we never burst the whole window: requests are spread at limit/window with a small
    burst allowance (a tenth of the limit), our own sends are capped at `limit` per window, and
    Koji's headers win when they say less is left (Remaining 0 → wait for Reset; 429 → wait as told).
    """

    def __init__(self, tracker: RateLimitTracker, clock: Callable[[], float] = time.time,
                 window: float = DEFAULT_WINDOW) -> None:
        self._tracker = tracker
        self._clock = clock
        self.window = window
        self._sent: deque[float] = deque()  # our send times in the last window, oldest first
        self._bucket_at: float | None = None  # GCRA "theoretical arrival time"
        self._interval = window / DEFAULT_LIMIT
        self._blocked_until = 0.0

    @property
    def limit(self) -> int:
        return self._tracker.snapshot.limit or DEFAULT_LIMIT

    def reserve(self, max_wait: float) -> float:
        """Claim the next send slot; returns how long to sleep first (no await: safe under concurrency)."""
        now = self._clock()
        limit = max(self.limit, 1)
        interval = self.window / limit
        # Until Koji's headers tell the real limit, allow the documented limit as one burst (the
        # window log still caps it); once known, spread requests and keep a tenth as burst.
        burst = max(1, limit // 10) if self._tracker.snapshot.limit else DEFAULT_LIMIT
        if self._bucket_at is not None and interval != self._interval:
            # The real limit became known (or changed): rescale the debt built up at the old pace.
            self._bucket_at = now + max(0.0, self._bucket_at - now) * interval / self._interval
        self._interval = interval
        tat = max(self._bucket_at or now, now)
        at = max(now, tat - (burst - 1) * interval, self._blocked_until)
        # Drop expired sends from the old end: O(1) per call (rebuilding the list cost O(sends per
        # window), ~1 ms a call at a few hundred calls/s against a generous limit).
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if len(self._sent) >= limit:
            # Koji's window starts when a request *arrives*: leave a little slack for transit and jitter.
            at = max(at, self._sent[-limit] + self.window + 0.1 + 0.005 * self.window)
        wait = max(0.0, at - now)
        if wait > max_wait:
            raise WaitTooLong(wait, limit)
        self._bucket_at = max(tat, at) + interval
        self._sent.append(at)
        return wait

    def estimate(self, count: int) -> float:
        """Seconds until `count` more requests could all be sent at the current pace (nothing is claimed)."""
        if count <= 0:
            return 0.0
        now = self._clock()
        limit = max(self.limit, 1)
        interval = self.window / limit
        burst = max(1, limit // 10) if self._tracker.snapshot.limit else DEFAULT_LIMIT
        tat = max(self._bucket_at or now, now, self._blocked_until)
        free_now = max(0, burst - int((tat - now) / interval))
        start = max(now, self._blocked_until)
        return max(0.0, start - now) + max(0, count - free_now) * interval

    def observe(self, status: int, headers: Mapping[str, str], retry_after: float | None) -> None:
        """Let Koji's answer tighten the schedule (never loosen it)."""
        now = self._clock()
        snap = self._tracker.snapshot
        if status == 429:
            self._blocked_until = max(self._blocked_until, now + (retry_after if retry_after is not None else 1.0))
        elif snap.remaining is not None and snap.remaining <= 0 and snap.reset_at is not None:
            self._blocked_until = max(self._blocked_until, min(snap.reset_at, now + MAX_RESET_WAIT))
