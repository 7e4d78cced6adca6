"""Shaping tool results: success with structured content, and errors as `isError` results.

Every upstream failure goes through `error_result`, so the model always learns what happened,
whether anything happened at Koji, and what to do next. Text that comes from Koji is third-party
content: it is cleaned, capped and fenced so a model can tell it from instructions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from koji_mcp.koji.errors import (
    KojiAPIError,
    KojiConnectError,
    KojiError,
    KojiProtocolError,
    KojiRateLimited,
    KojiTimeout,
    KojiUnavailable,
)
from koji_mcp.logs import redact
from koji_mcp.text import clean_koji_text, clean_structure, one_line

MAX_ERROR_TEXT = 2_000


def ok(text: str, structured: BaseModel | dict[str, Any]) -> CallToolResult:
    """A success: the text block and structuredContent, whose strings carry no invisible characters."""
    data = structured.model_dump(mode="json", exclude_none=True) if isinstance(structured, BaseModel) else structured
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=clean_structure(data))


def fail(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


# -- upstream errors -----------------------------------------------------------------------------

PERMISSION_FOR = {
    "start_interview": "interview:start",
    "start_interviews": "interview:start",
    "send_interview_message": "interview:chat",
    "complete_interview": "interview:complete",
    "get_interview": "interview:read",
}

OUTCOME_TEXT = {
    "not_sent": "Nothing was sent to Koji.",
    "rejected": "Koji did not act on the request.",
}


def _unknown_outcome(tool: str) -> str:
    if tool in {"start_interview", "start_interviews"}:
        return (
            "Outcome unknown: the interview may have been started (and credits spent). Do not retry "
            "blindly: check list_interviews (status 'unknown') or Koji's dashboard first, so the same "
            "person is not invited - and charged - twice."
        )
    if tool == "send_interview_message":
        return (
            "Outcome unknown: Koji may have received the message. Check with get_interview "
            "(include_transcript=true) before sending it again."
        )
    return "Outcome unknown: Koji may have acted on the request. Check with get_interview before retrying."


def when(seconds: float | None) -> str:
    if seconds is None:
        return "in about a minute (Koji did not say when)"
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return f"in {seconds:.0f} s (after {at:%H:%M:%S} UTC)"


def next_step(exc: KojiAPIError, tool: str) -> str:
    code, status = exc.code, exc.status
    if status == 401 and code == "invalid_session_token" and tool == "complete_interview":
        return ("Koji ends the session when an interview is completed, so it may already be completed: "
                "check with get_interview before doing anything else.")
    if status == 401 and code == "invalid_session_token":
        return "This interview's session has expired (it was completed or timed out); start a new interview."
    if status == 401:
        return (
            "Check KOJI_API_KEY: it is missing, mistyped or revoked. Create a key in Koji (Dashboard > "
            "Profile > API Keys) and restart koji-mcp with it."
        )
    if status == 403:
        permission = PERMISSION_FOR.get(tool, "the required permission")
        return f"The API key lacks the permission '{permission}'; create a key that has it in Koji and restart koji-mcp."
    if status == 404 and tool in {"start_interview", "start_interviews"}:
        return "The API key's project does not exist (was it deleted?); use a key from an existing Koji project."
    if status == 404:
        return "Koji does not know this interview; check the interview_id with list_interviews."
    if status == 402:
        return "The Koji account is out of credits; top up in Koji, then try again."
    if status == 409 and tool == "send_interview_message":
        return "The interview has ended: call complete_interview to run Koji's analysis."
    if status == 409:
        return "Koji reports a conflict with the interview's current state; check it with get_interview before retrying."
    if status == 422:
        return (
            "Publish the project's research brief in Koji (or fix the project setting that prevents "
            "starting), then try again."
        )
    if status == 400:
        return f"Fix the request as the message says, then call {tool} again."
    return f"Check the request and Koji's status, then try {tool} again."


def error_result(exc: KojiError, tool: str) -> CallToolResult:
    """The one place an upstream failure becomes an `isError` result."""
    if isinstance(exc, KojiRateLimited):
        text = (
            f"Koji rate limit reached (HTTP 429 {one_line(exc.code, 80)}): {one_line(exc.message, 1_000)}\n"
            f"{OUTCOME_TEXT[exc.outcome]} Retry {when(exc.retry_after)}."
        )
    elif isinstance(exc, KojiAPIError):
        head = f"HTTP {exc.status} {one_line(exc.code, 80)}" if exc.code else f"HTTP {exc.status}"
        message = one_line(exc.message, 1_000)
        if exc.has_koji_body:
            text = f"Koji rejected {tool} ({head}): {message}\n{OUTCOME_TEXT['rejected']} {next_step(exc, tool)}"
        else:
            text = (
                f"Koji rejected {tool} ({head}): {message}\n{OUTCOME_TEXT['rejected']} "
                "Is KOJI_BASE_URL right? It should be Koji's API origin, e.g. https://koji.so."
            )
    elif isinstance(exc, KojiConnectError):
        text = (
            f"Could not reach Koji: {one_line(exc.message, 1_000)}\n{OUTCOME_TEXT['not_sent']} Check the network and "
            f"KOJI_BASE_URL, then call {tool} again."
        )
    elif isinstance(exc, KojiTimeout | KojiUnavailable | KojiProtocolError):
        label = "Koji timed out" if isinstance(exc, KojiTimeout) else "Koji is unavailable or answered badly"
        outcome = _unknown_outcome(tool) if exc.outcome == "unknown" else OUTCOME_TEXT.get(exc.outcome, "")
        text = f"{label}: {one_line(exc.message, 1_000)}\n{outcome}"
    else:
        text = f"Koji call failed: {one_line(exc.message, 1_000)}\n{_unknown_outcome(tool)}"
    return fail(clean_koji_text(redact(text), MAX_ERROR_TEXT))
