"""start_interview: the core tool. Forwards one start call to Koji and keeps the session token."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from koji_mcp.errors import KojiError
from koji_mcp.models import Locale, Mode, Respondent, StartRequest
from koji_mcp.services import Services, current_owner
from koji_mcp.text import fence
from koji_mcp.tools.results import error_result, ok

logger = logging.getLogger(__name__)


class StartedInterview(BaseModel):
    """What the model gets back: never the session token."""

    interview_id: str = Field(description="Koji's id for the interview; pass it to the other interview tools.")
    initial_message: str = Field(description="The interviewer's first message, to show to the respondent as-is.")
    mode: Mode | None = Field(None, description="The mode requested (omitted: the project's setting).")
    locale: str | None = Field(None, description="The locale requested (omitted: the project's setting).")


def record_unknown_start(services: Services, owner: str, request: StartRequest, reason: str) -> str:
    """A start whose outcome is unknown is written down, so the user can reconcile it later."""
    placeholder = f"unknown-{uuid.uuid4()}"
    respondent = request.respondent or Respondent()
    try:
        services.ledger.record_start(
            interview_id=placeholder,
            session_token=None,
            owner=owner,
            status="unknown",
            external_id=respondent.external_id,
            display_name=respondent.display_name,
            metadata=respondent.metadata,
            mode=request.mode,
            locale=request.locale,
            note=reason,
        )
    except Exception:  # the error result must still reach the user
        logger.exception("could not record an unknown start in the ledger")
    return placeholder


async def start_interview(
    ctx: Context,
    respondent: Annotated[
        Respondent | None,
        Field(description="Who is being interviewed (all fields optional). Omit for an anonymous interview."),
    ] = None,
    mode: Annotated[
        Mode | None,
        Field(description="'text' (chat) or 'voice'. Omit to use the project's setting."),
    ] = None,
    locale: Locale | None = None,
) -> Annotated[CallToolResult, StartedInterview]:
    """Start a new Koji user-research interview and get the interviewer's first message.

    Use this tool when someone should be interviewed now: a user clicked "give feedback", a
    participant is ready, or you are asked to run an interview in this chat. Each call starts one
    interview and spends Koji credits, so do not call it twice for the same person. Relay the
    respondent's answers with send_interview_message; the server keeps the session token.
    Example: {"respondent": {"external_id": "user_123", "display_name": "Jane", "metadata": {"plan": "pro"}}, "mode": "text", "locale": "en"}
    """
    services: Services = ctx.request_context.lifespan_context
    owner = current_owner()
    request = StartRequest(respondent=respondent, mode=mode, locale=locale)
    await ctx.report_progress(0, 1, "starting the interview at Koji")
    try:
        started = await services.koji.start_interview(request)
    except KojiError as exc:
        result = error_result(exc, "start_interview")
        if exc.outcome == "unknown":
            placeholder = record_unknown_start(services, owner, request, exc.message)
            result.content[0].text += f"\nRecorded in the ledger as {placeholder} (status 'unknown')."
        return result

    person = request.respondent or Respondent()
    saved = True
    try:
        services.ledger.record_start(
            interview_id=started.interview_id,
            session_token=started.session_token,
            owner=owner,
            external_id=person.external_id,
            display_name=person.display_name,
            metadata=person.metadata,
            mode=mode,
            locale=locale,
            initial_message=started.initial_message,
        )
    except Exception:
        saved = False
        logger.exception("could not save interview %s to the ledger", started.interview_id)
    await ctx.report_progress(1, 1, "interview started")

    text = (
        f"Interview started. interview_id: {started.interview_id}\n"
        "Koji's interviewer opens with the message below; show it to the respondent exactly as written.\n"
        f"{fence('INTERVIEWER', started.initial_message)}\n"
        f"Next: send the respondent's reply with send_interview_message(interview_id=\"{started.interview_id}\", "
        "content=...). The session token stays on this server."
    )
    if not saved:
        text += (
            "\nWarning: the local ledger could not be written (see koji-mcp's log), so this interview's "
            "session token was lost and its messages cannot be relayed from here. Check the state directory."
        )
    return ok(
        text,
        StartedInterview(
            interview_id=started.interview_id, initial_message=started.initial_message, mode=mode, locale=locale
        ),
    )
