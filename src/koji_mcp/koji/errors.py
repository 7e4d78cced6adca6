"""The exceptions KojiClient raises, one class per thing that can go wrong upstream.

Each carries `outcome`, the fact a caller most needs before deciding what to do next:
- "not_sent": the request never reached Koji (safe to try again),
- "rejected": Koji answered with an error (nothing happened, fix the cause),
- "unknown":  the request may have reached Koji (do not blindly retry a start: it costs credits).
"""

from __future__ import annotations

from typing import Literal

Outcome = Literal["not_sent", "rejected", "unknown"]


class KojiError(Exception):
    """Base class for every upstream failure."""

    outcome: Outcome = "unknown"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KojiAPIError(KojiError):
    """Koji answered with an HTTP error and (usually) its `{error, message}` body."""

    outcome: Outcome = "rejected"

    def __init__(self, status: int, code: str | None, message: str, *, has_koji_body: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.has_koji_body = has_koji_body


class KojiRateLimited(KojiAPIError):
    """429: Koji did not process the request; `retry_after` says how long to wait (seconds)."""

    def __init__(
        self, code: str | None, message: str, retry_after: float | None, *, outcome: Outcome = "rejected"
    ) -> None:
        super().__init__(429, code, message)
        self.retry_after = retry_after
        self.outcome = outcome


class KojiUnavailable(KojiError):
    """5xx or an unreadable answer: Koji may or may not have acted on the request."""

    def __init__(self, message: str, *, status: int | None = None, outcome: Outcome = "unknown") -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class KojiConnectError(KojiError):
    """The connection could not be made, so the request was never sent."""

    outcome: Outcome = "not_sent"


class KojiTimeout(KojiError):
    """The request was sent but no answer came in time: its outcome is unknown."""

    outcome: Outcome = "unknown"


class KojiProtocolError(KojiError):
    """Koji's answer was not what its API documents (missing fields, too large, wrong type)."""

    def __init__(self, message: str, *, status: int | None = None, outcome: Outcome = "unknown") -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome


class LedgerUnavailable(KojiError):
    """The local ledger could not be written before sending, so nothing was sent."""

    outcome: Outcome = "not_sent"
