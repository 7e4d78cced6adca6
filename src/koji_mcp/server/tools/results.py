"""Shaping tool results: success with structured content, and errors as `isError` results.

Every upstream or storage failure becomes a result through `error_result`, called in one place (the
tool runner, schema.py), so the model always learns what happened, whether anything happened at
Koji, and what to do next. Text that comes from Koji is third-party
content: it is cleaned, capped and fenced so a model can tell it from instructions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

from koji_mcp.interviews.ledger import StorageError
from koji_mcp.koji.errors import (
    BadRequest,
    BriefNotPublished,
    Conflict,
    Forbidden,
    InterviewEnded,
    KojiAPIError,
    KojiConnectError,
    KojiError,
    KojiProtocolError,
    KojiRateLimited,
    KojiTimeout,
    KojiUnavailable,
    NotFound,
    NotKoji,
    PaymentRequired,
    ProjectNotFound,
    SessionGone,
    Unauthorized,
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


# -- upstream and storage errors -----------------------------------------------------------------

OUTCOME_TEXT = {
    "not_sent": "Nothing was sent to Koji.",
    "rejected": "Koji did not act on the request.",
}
START_TOOLS = {"start_interview", "start_interviews"}


def _unknown_outcome(tool: str) -> str:
    if tool in START_TOOLS:
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
    """What to do about Koji's refusal, from what it means (its type), worded for `tool`."""
    if isinstance(exc, SessionGone):
        if tool == "complete_interview":
            return ("Koji ends the session when an interview is completed, so it may already be completed: "
                    "check with get_interview before doing anything else.")
        return "This interview's session has expired (it was completed or timed out); start a new interview."
    if isinstance(exc, Unauthorized):
        return (
            "Check KOJI_API_KEY: it is missing, mistyped or revoked. Create a key in Koji (Dashboard > "
            "Profile > API Keys) and restart koji-mcp with it."
        )
    if isinstance(exc, Forbidden):
        return (f"The API key lacks the permission '{exc.permission}'; create a key that has it in Koji and "
                "restart koji-mcp.")
    if isinstance(exc, ProjectNotFound):
        return "The API key's project does not exist (was it deleted?); use a key from an existing Koji project."
    if isinstance(exc, NotFound):
        return "Koji does not know this interview; check the interview_id with list_interviews."
    if isinstance(exc, PaymentRequired):
        return "The Koji account is out of credits; top up in Koji, then try again."
    if isinstance(exc, InterviewEnded):
        return "The interview has ended: call complete_interview to run Koji's analysis."
    if isinstance(exc, Conflict):
        return "Koji reports a conflict with the interview's current state; check it with get_interview before retrying."
    if isinstance(exc, BriefNotPublished):
        return (
            "Publish the project's research brief in Koji (or fix the project setting that prevents "
            "starting), then try again."
        )
    if isinstance(exc, BadRequest):
        return f"Fix the request as the message says, then call {tool} again."
    return f"Check the request and Koji's status, then try {tool} again."


def error_result(exc: KojiError | StorageError, tool: str) -> CallToolResult:
    """An upstream or storage failure as an `isError` result (StrictTool.run, the one boundary, calls it)."""
    if isinstance(exc, StorageError):
        # the ledger on PostgreSQL (database.py's messages say "the ledger database"), else SQLite in the state dir
        check = ("the ledger database (KOJI_MCP_DATABASE_URL: that the server is up and reachable from here, and "
                 "the credentials)" if exc.message.startswith("the ledger database") else
                 "the state directory (KOJI_MCP_STATE_DIR: disk space, permissions)")
        text = f"{exc.message[:1].upper()}{exc.message[1:]}.\n{OUTCOME_TEXT['not_sent']} Check {check}, then call {tool} again."
    elif isinstance(exc, KojiRateLimited):
        text = (
            f"Koji rate limit reached (HTTP 429 {one_line(exc.code, 80)}): {one_line(exc.message, 1_000)}\n"
            f"{OUTCOME_TEXT[exc.outcome]} Retry {when(exc.retry_after)}."
        )
    elif isinstance(exc, NotKoji):
        text = (
            f"Koji rejected {tool} (HTTP {exc.status}): {one_line(exc.message, 1_000)}\n{OUTCOME_TEXT['rejected']} "
            "Is KOJI_BASE_URL right? It should be Koji's API origin, e.g. https://koji.so."
        )
    elif isinstance(exc, KojiAPIError):
        head = f"HTTP {exc.status} {one_line(exc.code, 80)}" if exc.code else f"HTTP {exc.status}"
        text = (f"Koji rejected {tool} ({head}): {one_line(exc.message, 1_000)}\n{OUTCOME_TEXT['rejected']} "
                f"{next_step(exc, tool)}")
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
    notes = getattr(exc, "__notes__", None)  # what the tool added (e.g. the ledger row of an unknown start)
    if notes:
        text += "\n" + "\n".join(notes)
    return fail(clean_koji_text(redact(text), MAX_ERROR_TEXT))
