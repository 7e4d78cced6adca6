"""What Koji's rate-limit headers say, and how long a 429 asks us to wait.

Koji allows 60 requests per minute per key over a sliding window and reports it on every response
with `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (a Unix timestamp). On a
429 the current docs send no `Retry-After`; the older ones did. We honour either.
"""

from __future__ import annotations

import time
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
    observed_at: float | None = None


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
        self.snapshot = RateLimitSnapshot(limit, remaining, reset, self._clock())

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
