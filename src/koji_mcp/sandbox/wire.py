"""Koji's error envelope and request-body validation helpers.

Every API error is ``{"error": code, "message": text}``; handlers raise :class:`ApiError`
and the route wrapper turns it into that body. Validation messages name the field
(``respondent.metadata.plan``) so a client can report exactly what was wrong.
JSON ``null`` for an optional field means "not given". ``Content-Type`` is not
enforced; an empty body counts as ``{}``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

__all__ = ["ApiError", "check_fields", "check_flat_object", "error_response", "optional_str", "read_object"]

UNAUTHORIZED = "The provided API key is invalid or has been revoked."
FORBIDDEN = "Your API key does not have the required permission for this action."
RATE_LIMITED = "Rate limit exceeded. Please retry after the window resets."
INVALID_SESSION = "The session token is invalid or expired."
INTERVIEW_NOT_FOUND = "The specified interview does not exist."
PROJECT_NOT_FOUND = "The specified project does not exist."
NO_PUBLISHED_BRIEF = "The project has no published research brief."
ALREADY_ENDED = "The interview has already ended. Complete it to run the analysis."
INTERNAL = "An unexpected error occurred. Please try again later."


class ApiError(Exception):
    """An error response in Koji's format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> JSONResponse:
        return error_response(self.status, self.code, self.message)


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


async def read_object(request: Request) -> dict[str, Any]:
    """The JSON object body; empty body → {}; anything else → 400."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


def check_fields(data: dict[str, Any], allowed: tuple[str, ...], prefix: str = "") -> None:
    for name in data:
        if name not in allowed:
            raise invalid(f"Unknown field '{prefix}{name}'. Allowed fields: {', '.join(allowed)}.")


def optional_str(data: dict[str, Any], name: str, prefix: str = "") -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid(f"'{prefix}{name}' must be a string.")
    return value


def check_flat_object(value: Any, where: str) -> dict[str, Any] | None:
    """A flat object: string keys, values string/number/boolean/null; None passes."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(f"'{where}' must be an object.")
    for key, item in value.items():
        if item is not None and not isinstance(item, (str, int, float, bool)):
            raise invalid(f"'{where}.{key}' must be a string, number, boolean or null ('{where}' must be flat).")
    return value
