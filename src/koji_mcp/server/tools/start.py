"""start_interview: the core tool. Forwards one start call to Koji and keeps the session token."""


import logging
from typing import Annotated, Any

from mcp.server.apps import client_supports_apps
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from koji_mcp.koji.models import Locale, Mode, Respondent, StartRequest
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.interviews.start_once import start_one
from koji_mcp.text import fence
from koji_mcp.server.tools.results import ok

logger = logging.getLogger(__name__)


class StartedInterview(BaseModel):
    # What the model gets back: never the session token. mode/locale echo the request.
    interview_id: str
    initial_message: str = Field(description="Show as-is.")
    mode: Mode | None = None
    locale: str | None = None
    question: dict[str, Any] | None = None  # only for MCP Apps hosts: the view's first widget


async def start_interview(
    ctx: ServerContext,
    respondent: Annotated[
        Respondent | None,
        Field(description="Omit for anonymous."),
    ] = None,
    mode: Annotated[
        Mode | None,
        Field(description="Omit for the project's."),
    ] = None,
    locale: Locale | None = None,
) -> Annotated[CallToolResult, StartedInterview]:
    """Start one Koji interview: its id and the interviewer's first message. Spends credits: never
    start the same person twice; relay answers with send_interview_message."""
    services = services_of(ctx)
    owner = current_owner()
    request = StartRequest(respondent=respondent, mode=mode, locale=locale)
    earlier = services.ledger.find_by_external_id(respondent.external_id, owner) if respondent and respondent.external_id else []
    await ctx.report_progress(0, 1, "starting the interview at Koji")
    result = await start_one(services, owner, request)
    if result.outcome != "started":
        assert result.error is not None
        if result.outcome == "unknown":
            result.error.add_note(f"Recorded in the ledger as {result.interview_id} (status 'unknown').")
        raise result.error  # StrictTool.run renders it
    await ctx.report_progress(1, 1, "interview started")
    interview_id, greeting = result.interview_id or "", result.initial_message or ""
    text = (
        f"Interview started. interview_id: {interview_id}\n"
        "Koji's interviewer opens with the message below; show it to the respondent exactly as written.\n"
        f"{fence('INTERVIEWER', greeting)}\n"
        f"Next: send the respondent's reply with send_interview_message(interview_id=\"{interview_id}\", "
        "content=...). The session token stays on this server."
    )
    if earlier:
        text += (
            f"\nNote: external_id {respondent.external_id!r} already had {len(earlier)} interview(s) in the ledger "
            f"(latest {earlier[0].interview_id}, status {earlier[0].status})."
        )
    if not result.saved:
        text += (
            "\nWarning: the local ledger could not be written (see koji-mcp's log), so this interview's "
            "session token was lost and its messages cannot be relayed from here. Check the state directory."
        )
    # Hosts without Apps get exactly the result they always had; the view also gets the first question's data.
    question = result.question if client_supports_apps(ctx) else None
    return ok(text, StartedInterview(interview_id=interview_id, initial_message=greeting, mode=mode, locale=locale,
                                     question=question))
