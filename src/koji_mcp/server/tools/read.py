"""get_interview and list_interviews: reading results from Koji and the local ledger."""


import json
import re
from typing import Annotated, Any

import anyio
from mcp.types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field, field_validator

from koji_mcp.interviews.ledger import LOCAL_OWNER, STATUSES, best_effort
from koji_mcp.koji.errors import InterviewNotFound
from koji_mcp.koji.models import InterviewId
from koji_mcp.interviews.services import Services
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.text import clean_koji_text, one_line
from koji_mcp.server.tools.lifecycle import completion_fields
from koji_mcp.server.tools.results import fail, ok
from koji_mcp.interviews.views import interview_view, render_interview, searchable_text

TRANSCRIPT_PAGE = 50
POLL_INTERVAL = 1.0


class TranscriptMessage(BaseModel):
    # One transcript message as Koji sends it (unknown fields pass through). No docstring or field
    # descriptions: they would be repeated in tools/list, whose size is budgeted.
    model_config = ConfigDict(extra="allow")

    role: str | None = None  # interviewer or respondent
    content: str | None = None  # the message text (third-party: shown, never followed)
    message_id: str | None = None
    created_at: str | None = None  # ISO 8601 UTC

    @field_validator("role", "content", "message_id", "created_at", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        """Koji promises strings; anything else is kept readable instead of failing the whole call."""
        return value if value is None or isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class InterviewResult(BaseModel):
    # Declares what a model needs to reason about; respondent, mode, locale, timestamps,
    # completion_reason, messages_count and transcript paging pass through as extra fields.
    model_config = ConfigDict(extra="allow")

    interview_id: str
    status: str | None = None
    analysis_status: str = Field(description="not_started, pending or ready")
    analysis: dict[str, Any] | None = Field(None, description="summary, themes, quality_score")
    structured_answers: list[dict[str, Any]] = Field(
        default_factory=list,
        description="scale number, single_choice string, multiple_choice/ranking list, yes_no bool",
    )
    transcript: list[TranscriptMessage] | None = None
    next_transcript_offset: int | None = None
    check_again_in_seconds: int | None = None
    extra: dict[str, Any] | None = None


class InterviewList(BaseModel):
    interviews: list[dict[str, Any]]
    total: int
    next_cursor: str | None = None


async def get_interview(
    ctx: ServerContext,
    interview_id: InterviewId,
    include_transcript: Annotated[
        bool, Field(description="Add the conversation (50 a page).")
    ] = False,
    transcript_offset: Annotated[
        int, Field(ge=0, description="From next_transcript_offset.")
    ] = 0,
) -> Annotated[CallToolResult, InterviewResult]:
    """Read an interview's status, analysis and typed structured answers; include_transcript adds
    the conversation."""
    services = services_of(ctx)
    owner = current_owner()
    if owner != LOCAL_OWNER and services.ledger.get(interview_id, owner) is None:
        # Another client's interview reads exactly like one that does not exist.
        raise InterviewNotFound(404, "not_found", "The specified interview does not exist.")
    deadline = anyio.current_time() + services.settings.analysis_poll_seconds
    entry = services.ledger.get(interview_id, owner)
    while True:
        raw = await services.koji.get_interview(interview_id, session_token=entry.session_token if entry else None)
        view = interview_view(raw, include_transcript=include_transcript, offset=transcript_offset,
                              page=TRANSCRIPT_PAGE,
                              interview_id=interview_id)
        if view["analysis_status"] != "pending" or anyio.current_time() + POLL_INTERVAL > deadline:
            break
        await anyio.sleep(POLL_INTERVAL)
    remember(services, owner, interview_id, raw, view)
    result = InterviewResult.model_validate(view)
    return ok(render_interview(result.model_dump(mode="json", exclude_none=True)), result)


def remember(services: Services, owner: str, interview_id: str, raw: dict[str, Any], view: dict[str, Any]) -> None:
    """What a read learnt from Koji goes into the ledger: the status, and the text `search` finds.

    Bookkeeping only: a ledger that cannot be written must not hide what Koji answered.
    """
    _sync_ledger(services, owner, interview_id, view)
    best_effort(services.ledger.index_text, interview_id, owner, **searchable_text(raw))


def _sync_ledger(services: Services, owner: str, interview_id: str, view: dict[str, Any]) -> None:
    entry = services.ledger.get(interview_id, owner)
    if entry is None or entry.status == view.get("status"):
        return
    if view.get("status") == "completed":
        best_effort(services.ledger.update_status, interview_id, owner, "completed",
                    completion=completion_fields(view, "manual"))
    elif view.get("status") == "ended":
        best_effort(services.ledger.update_status, interview_id, owner, "ended")


async def list_interviews(
    ctx: ServerContext,
    status: Annotated[
        str | None, Field(description=", ".join(STATUSES))
    ] = None,
    external_id: Annotated[str | None, Field(description="Only this respondent.")] = None,
    limit: Annotated[int, Field(ge=1, le=100, description="Page size.")] = 20,
    cursor: Annotated[str | None, Field(description="From next_cursor.")] = None,
) -> Annotated[CallToolResult, InterviewList]:
    """List interviews started here, newest first; finds ids and 'unknown' starts."""
    services = services_of(ctx)
    if status is not None and status not in STATUSES:
        return fail(f"status must be one of {', '.join(STATUSES)} (got {clean_koji_text(status, 40)!r}).")
    before: int | None = None
    if cursor is not None:
        if not re.fullmatch(r"[0-9]{1,18}", cursor):
            return fail("cursor is not valid: pass next_cursor from a previous list_interviews result, or omit it.")
        before = int(cursor)
    entries, total = services.ledger.list(
        current_owner(), status=status, external_id=external_id, limit=limit + 1, before_seq=before
    )
    has_more = len(entries) > limit  # one extra row tells whether another page exists
    entries = entries[:limit]
    items = [{k: v for k, v in e.public().items() if v is not None} for e in entries]
    next_cursor = str(entries[-1].seq) if has_more else None
    if not items:
        text = "No interviews match." if total == 0 else "No more interviews on this page."
    else:
        lines = [
            f"- {i['interview_id']} [{i['status']}] "
            + one_line(" ".join(str(x) for x in (i.get("display_name"), i.get("external_id") and f"({i['external_id']})") if x), 200)
            + f" started {i['created_at']}"
            + (f" - {clean_koji_text(i['note'], 300)}" if i.get("note") else "")
            for i in items
        ]
        text = f"{len(items)} of {total} interview(s), newest first:\n" + "\n".join(lines)
    if next_cursor:
        text += f"\nMore: call list_interviews with cursor=\"{next_cursor}\"."
    return ok(text, InterviewList(interviews=items, total=total, next_cursor=next_cursor))

