"""send_interview_message and complete_interview: the respondent side of a running interview.

Both need the interview's session token, which only the ledger holds; the model passes the
interview_id and never sees the token.
"""


from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from koji_mcp.interviews.ledger import LedgerEntry, best_effort
from koji_mcp.koji.errors import InterviewEnded, SessionGone
from koji_mcp.koji.models import CompletionReason, FlatMetadata, InterviewId
from koji_mcp.interviews.services import Services
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.text import clean_koji_text, fence, one_line
from koji_mcp.server.tools.results import fail, ok

MAX_MESSAGE_CHARS = 5_000
ACTIVE = "active"


class InterviewerReply(BaseModel):
    interview_id: str
    interviewer_message: str = Field(description="Show as-is.")
    interview_status: str
    ended: bool = Field(description="True: call complete_interview.")
    messages_count: int | None = None
    question: dict[str, Any] | None = Field(None, description="type, options, min, max, labels")


class CompletedInterview(BaseModel):
    interview_id: str
    status: Literal["completed"] = "completed"
    completion_reason: str
    completed_at: str | None = None
    analysis_status: str | None = None


def lookup(services: Services, interview_id: str, tool: str) -> LedgerEntry | CallToolResult:
    """The ledger entry with a usable session token, or the isError result that explains why not."""
    entry = services.ledger.get(interview_id, current_owner())
    if entry is None:
        return fail(
            f"Unknown interview_id {interview_id!r}: this server did not start it, so it holds no session "
            f"token for it. {tool} only works on interviews started here; see list_interviews. "
            "(get_interview can still read any interview of the project.)"
        )
    if entry.resolved_by and not entry.session_token:
        return fail(
            f"Interview {interview_id!r} was recorded by hand after a start with an unknown outcome "
            f"(koji-mcp ledger resolve, by {clean_koji_text(entry.resolved_by, 60)} at {entry.resolved_at}). "
            f"Koji gives an interview's session token only to the call that started it, so {tool} is not "
            "possible for it; get_interview can still read it."
        )
    if entry.status == "unknown" or not entry.session_token:
        return fail(
            f"Interview {interview_id!r} has no session token: its start had an unknown outcome. "
            "Check Koji's dashboard; if it did not start, start a new interview."
        )
    return entry


async def send_interview_message(
    ctx: ServerContext,
    interview_id: InterviewId,
    content: Annotated[
        str,
        Field(
            description=f"Their words verbatim (1-{MAX_MESSAGE_CHARS:,} chars); never answer for them."
        ),
    ],
) -> Annotated[CallToolResult, InterviewerReply]:
    """Relay the respondent's answer verbatim; show the interviewer's reply as-is. When it says
    ended, call complete_interview."""
    services = services_of(ctx)
    text = content.strip()
    if not text:
        return fail("content is empty: pass the respondent's message verbatim. Nothing was sent to Koji.")
    if len(content) > MAX_MESSAGE_CHARS:
        return fail(
            f"content is {len(content):,} characters; the limit is {MAX_MESSAGE_CHARS:,}. Ask the respondent to "
            "shorten it, or send it in parts. Nothing was sent to Koji."
        )
    entry = lookup(services, interview_id, "send_interview_message")
    if isinstance(entry, CallToolResult):
        return entry
    if entry.status == "completed":
        return fail(
            f"Interview {interview_id} is already completed, so it takes no more messages. Read the results "
            "with get_interview, or start a new interview."
        )
    if entry.status == "ended":
        return fail(
            f"Interview {interview_id} has ended naturally and takes no more messages. Call "
            "complete_interview to run Koji's analysis."
        )
    if entry.status == "expired":
        return fail(f"Interview {interview_id}'s session has expired; start a new interview.")
    try:
        reply = await services.koji.send_message(interview_id, entry.session_token or "", content)
    except SessionGone:
        best_effort(services.ledger.update_status, interview_id, entry.owner, "expired")
        raise  # StrictTool.run renders it
    except InterviewEnded:
        best_effort(services.ledger.update_status, interview_id, entry.owner, "ended")
        raise

    status = one_line(reply.interview_status or ACTIVE, 40)
    ended = status != ACTIVE
    if ended:
        best_effort(services.ledger.update_status, interview_id, entry.owner, "ended")
    else:
        best_effort(services.ledger.touch, interview_id, entry.owner)
    next_step = (
        f"The interview has ended (status '{status}'). Show the reply, then call "
        f"complete_interview(interview_id=\"{interview_id}\", reason=\"natural\") to run Koji's analysis."
        if ended
        else "Show the reply to the respondent and relay their answer with send_interview_message."
    )
    return ok(
        f"Koji's interviewer replied (interview {interview_id}, status '{status}'):\n"
        f"{fence('INTERVIEWER', reply.interviewer_message)}\n{next_step}",
        InterviewerReply(
            interview_id=interview_id, interviewer_message=reply.interviewer_message,
            interview_status=status, ended=ended, messages_count=reply.messages_count,
            question=None if ended else reply.question,
        ),
    )


async def complete_interview(
    ctx: ServerContext,
    interview_id: InterviewId,
    reason: Annotated[
        CompletionReason,
        Field(description="'natural' when the interviewer finished."),
    ] = "manual",
    feedback: Annotated[
        FlatMetadata | None,
        Field(description="Flat, e.g. {'rating': 5}."),
    ] = None,
) -> Annotated[CallToolResult, CompletedInterview]:
    """Complete an interview so Koji analyses it; safe to repeat. Then call get_interview."""
    services = services_of(ctx)
    entry = lookup(services, interview_id, "complete_interview")
    if isinstance(entry, CallToolResult):
        return entry
    if entry.status == "completed" and entry.completion:
        return _completed_result(interview_id, entry.completion)
    body = await services.koji.complete_interview(interview_id, entry.session_token or "", reason=reason,
                                                  feedback=feedback)
    completion = completion_fields(body, reason)
    best_effort(services.ledger.update_status, interview_id, entry.owner, "completed", completion=completion)
    return _completed_result(interview_id, completion)


def completion_fields(body: dict, default_reason: str) -> dict[str, str | None]:
    """What we keep of Koji's (undocumented) completion body, as strings whatever Koji sent."""
    def text(value: object) -> str | None:
        return None if value is None else one_line(value, 100)

    return {
        "completion_reason": text(body.get("completion_reason")) or default_reason,
        "completed_at": text(body.get("completed_at")),
        "analysis_status": text(body.get("analysis_status")),
    }


def _completed_result(interview_id: str, completion: dict) -> CallToolResult:
    result = CompletedInterview(interview_id=interview_id, **completion_fields(completion, "manual"))  # (re)cleaned
    return ok(
        f"Interview {interview_id} is completed (reason '{result.completion_reason}'). Koji is analysing it: "
        f"call get_interview(interview_id=\"{interview_id}\") for the summary, themes and structured answers "
        "(analysis usually takes a few seconds to a minute).",
        result,
    )
