"""The exceptions KojiClient raises: one class per thing that can go wrong upstream.

Callers read the type, never an HTTP status: `SessionGone` (the interview's session token expired),
`Forbidden` (the key lacks `permission`), `ProjectNotFound`, `InterviewEnded`… The client picks the
class from the status, Koji's error code and the endpoint that answered.

Each carries `outcome`, the fact a caller most needs before deciding what to do next:
- "not_sent": the request never reached Koji (safe to try again),
- "rejected": Koji answered with an error (nothing happened, fix the cause),
- "unknown":  the request may have reached Koji (do not blindly retry a start: it costs credits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Outcome = Literal["not_sent", "rejected", "unknown"]


class KojiError(Exception):
    """Base class for every upstream failure."""

    outcome: Outcome = "unknown"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KojiAPIError(KojiError):
    """Koji answered with an HTTP error and its `{error, message}` body (a status without a class below)."""

    outcome: Outcome = "rejected"

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BadRequest(KojiAPIError):
    """400: the request was malformed or a field invalid; Koji's message says which."""


class Unauthorized(KojiAPIError):
    """401: the API key is missing, invalid or revoked."""


class SessionGone(KojiAPIError):
    """401 `invalid_session_token`: the interview's session ended (completed or timed out)."""


class PaymentRequired(KojiAPIError):
    """402: the account is out of credits."""


class Forbidden(KojiAPIError):
    """403: the API key lacks `permission` (e.g. `interview:start`)."""

    def __init__(self, status: int, code: str | None, message: str, *, permission: str) -> None:
        super().__init__(status, code, message)
        self.permission = permission


class NotFound(KojiAPIError):
    """404 with Koji's error body: what the endpoint names does not exist."""


class ProjectNotFound(NotFound):
    """404 on start: the API key's project does not exist (deleted?)."""


class InterviewNotFound(NotFound):
    """404 on an interview's endpoint: Koji does not know this interview."""


class Conflict(KojiAPIError):
    """409: the request conflicts with the interview's current state."""


class InterviewEnded(Conflict):
    """409 on a message: the interview has ended and takes no more messages."""


class BriefNotPublished(KojiAPIError):
    """422: the project's research brief is not published (or a setting prevents starting)."""


class NotKoji(KojiAPIError):
    """An error status without Koji's JSON error body: the base URL is probably not Koji's API."""


class Redirected(NotKoji):
    """3xx: the base URL redirects (the client never follows a redirect with the key); `location` says where."""

    def __init__(self, status: int, message: str, *, location: str) -> None:
        super().__init__(status, None, message)
        self.location = location


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


@dataclass(frozen=True)
class Endpoint:
    """What an error status means on one of Koji's endpoints."""

    permission: str
    not_found: type[NotFound] = InterviewNotFound
    conflict: type[Conflict] = Conflict


START = Endpoint("interview:start", not_found=ProjectNotFound)
MESSAGE = Endpoint("interview:chat", conflict=InterviewEnded)
COMPLETE = Endpoint("interview:complete")
READ = Endpoint("interview:read")
PERMISSIONS: tuple[str, ...] = tuple(e.permission for e in (START, MESSAGE, COMPLETE, READ))

_BY_STATUS: dict[int, type[KojiAPIError]] = {
    400: BadRequest, 401: Unauthorized, 402: PaymentRequired, 422: BriefNotPublished,
}


def api_error(endpoint: Endpoint, status: int, code: str | None, message: str) -> KojiAPIError:
    """The typed error for Koji's error answer `status`/`code` on `endpoint`."""
    if status == 401 and code == "invalid_session_token":
        return SessionGone(status, code, message)
    if status == 403:
        return Forbidden(status, code, message, permission=endpoint.permission)
    if status == 404:
        return endpoint.not_found(status, code, message)
    if status == 409:
        return endpoint.conflict(status, code, message)
    return _BY_STATUS.get(status, KojiAPIError)(status, code, message)
