"""The four documented Koji endpoints, after authentication and rate limiting.

Order inside each handler: body validation (400) → resource checks (404, 401 session
token, 409, 422). Invented details, all documented in the package docstring: the 409
body for messages to an ended interview, the complete/GET bodies and the SSE format.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from . import interviewer, wire
from .analysis import analyse
from .config import KeySpec
from .state import Interview, Project, SandboxState, iso
from .wire import ApiError, invalid

__all__ = ["Caller", "complete_current", "complete_legacy", "get_interview", "send_message", "start_interview"]

MAX_CONTENT = 10_000
REASONS = ("natural", "respondent_left", "timeout", "manual")


@dataclass(frozen=True)
class Caller:
    """The authenticated key making the request."""

    key: str
    spec: KeySpec
    state: SandboxState

    @property
    def project(self) -> Project:
        return self.state.projects[self.spec.project]


# ---------------------------------------------------------------- start
async def start_interview(request: Request, caller: Caller) -> Response:
    data = await wire.read_object(request)
    wire.check_fields(data, ("respondent", "mode", "locale"))
    project = caller.project
    brief = project.brief
    respondent = data.get("respondent")
    if respondent is None:
        respondent = {}
    if not isinstance(respondent, dict):
        raise invalid("'respondent' must be an object.")
    wire.check_fields(respondent, ("external_id", "display_name", "metadata"), "respondent.")
    external_id = wire.optional_str(respondent, "external_id", "respondent.")
    display_name = wire.optional_str(respondent, "display_name", "respondent.")
    metadata = wire.check_flat_object(respondent.get("metadata"), "respondent.metadata")
    mode = data.get("mode")
    if mode is None:
        mode = brief["default_mode"]
    elif mode not in ("text", "voice"):
        raise invalid("'mode' must be 'text' or 'voice'.")
    locale = data.get("locale")
    if locale is None:
        locale = brief["default_locale"]
    else:
        if not isinstance(locale, str):
            raise invalid("'locale' must be a string.")
        matches = [loc for loc in brief["locales"] if loc.lower() == locale.lower()]
        if not matches:
            raise invalid(f"Unsupported locale '{locale}'. Supported: {', '.join(brief['locales'])}.")
        locale = matches[0]

    if project.deleted:
        raise ApiError(404, "not_found", wire.PROJECT_NOT_FOUND)
    if not project.published:
        raise ApiError(422, "unprocessable", wire.NO_PUBLISHED_BRIEF)

    who = {"external_id": external_id, "display_name": display_name, "metadata": metadata}
    interview = caller.state.new_interview(project, mode, locale, who)
    first = interviewer.initial_message(brief, locale, display_name)
    interview.add("interviewer", first, interview.created_at)
    body = {"interview_id": interview.interview_id, "session_token": interview.session_token,
            "initial_message": first, "question": interviewer.question_data(brief["questions"][0], locale)}
    return JSONResponse(body, status_code=201)


# ---------------------------------------------------------------- shared checks
def _interview_for_session(request: Request, caller: Caller, interview_id: Any) -> Interview:
    interview = caller.state.find_interview(interview_id, caller.spec.project)
    if interview is None:
        raise ApiError(404, "not_found", wire.INTERVIEW_NOT_FOUND)
    if request.headers.get("x-session-token") != interview.session_token:
        raise ApiError(401, "invalid_session_token", wire.INVALID_SESSION)
    return interview


# ---------------------------------------------------------------- message
async def send_message(request: Request, caller: Caller) -> Response:
    data = await wire.read_object(request)
    wire.check_fields(data, ("content", "type"))
    if data.get("type") is not None and data["type"] != "respondent":
        raise invalid("'type' must be 'respondent'.")
    content = data.get("content")
    if content is None:
        raise invalid("'content' is required.")
    if not isinstance(content, str):
        raise invalid("'content' must be a string.")
    if not content.strip():
        raise invalid("'content' must not be empty.")
    if len(content) > MAX_CONTENT:
        raise invalid(f"'content' must be at most {MAX_CONTENT} characters (got {len(content)}).")

    interview = _interview_for_session(request, caller, request.path_params["interview_id"])
    if interview.status == "completed":  # completing expires the token for chat
        raise ApiError(401, "invalid_session_token", wire.INVALID_SESSION)
    if interview.status == "ended":
        raise ApiError(409, "conflict", wire.ALREADY_ENDED)

    brief = caller.project.brief
    now = caller.state.clock()
    answered = interview.question_index
    sent = interview.add("respondent", content, now)
    interview.answers.setdefault(brief["questions"][answered]["id"], content)
    text, ended = interviewer.respond(brief, answered, interview.locale)
    reply = interview.add("interviewer", text, now)
    interview.question_index += 1
    if ended:
        interview.status = "ended"
    count = len(interview.transcript)
    asked = None if ended else interviewer.question_data(brief["questions"][answered + 1], interview.locale)

    if "text/event-stream" in request.headers.get("accept", "").lower():
        done = {"type": "done", "message_id": sent.message_id, "interviewer_message_id": reply.message_id,
                "interview_status": interview.status, "messages_count": count}
        if asked is not None:
            done["question"] = asked
        return StreamingResponse(_sse(text, done), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    body = {"message_id": sent.message_id, "interviewer_response": {"content": text, "message_id": reply.message_id},
            "interview_status": interview.status, "messages_count": count}
    if asked is not None:
        body["question"] = asked
    return JSONResponse(body)


async def _sse(text: str, done: dict[str, Any]) -> AsyncIterator[str]:
    for chunk in interviewer.split_chunks(text):
        yield f"event: delta\ndata: {json.dumps({'type': 'delta', 'content': chunk})}\n\n"
    yield f"event: done\ndata: {json.dumps(done)}\n\n"
    yield "data: [DONE]\n\n"


# ---------------------------------------------------------------- complete
async def complete_current(request: Request, caller: Caller) -> Response:
    data = await wire.read_object(request)
    wire.check_fields(data, ("interview_id", "reason", "feedback"))
    interview_id = data.get("interview_id")
    if interview_id is None:
        raise invalid("'interview_id' is required.")
    if not isinstance(interview_id, str):
        raise invalid("'interview_id' must be a string.")
    return _complete(request, caller, interview_id, data)


async def complete_legacy(request: Request, caller: Caller) -> Response:
    data = await wire.read_object(request)
    wire.check_fields(data, ("interview_id", "reason", "feedback"))
    interview_id = request.path_params["interview_id"]
    if data.get("interview_id") is not None and data["interview_id"] != interview_id:
        raise invalid("'interview_id' in the body does not match the interview in the URL.")
    return _complete(request, caller, interview_id, data)


def _complete(request: Request, caller: Caller, interview_id: str, data: dict[str, Any]) -> Response:
    reason = data.get("reason")
    if reason is None:
        reason = "manual"
    elif reason not in REASONS:
        raise invalid(f"'reason' must be one of: {', '.join(REASONS)}.")
    feedback = wire.check_flat_object(data.get("feedback"), "feedback")

    interview = _interview_for_session(request, caller, interview_id)
    if interview.complete_response is None:  # first completion; later calls replay it
        now = caller.state.clock()
        interview.completed_at = interview.updated_at = now
        interview.completion_reason = reason
        interview.feedback = feedback
        interview.analysis = analyse(interview, caller.project.brief)
        interview.status = "completed"
        interview.complete_response = {
            "interview_id": interview.interview_id, "status": "completed", "completion_reason": reason,
            "completed_at": iso(now), "analysis_status": "pending"}
    return JSONResponse(interview.complete_response)


# ---------------------------------------------------------------- get
def interview_json(interview: Interview, state: SandboxState) -> dict[str, Any]:
    """The GET body (also used, with extras, by ``/_sandbox/interviews``)."""
    analysis: dict[str, Any] | None = None
    if interview.completed_at is not None:
        ready = state.clock() >= interview.completed_at + state.config.analysis_delay
        analysis = interview.analysis if ready else {"status": "pending"}
    return {"interview_id": interview.interview_id, "status": interview.status, "mode": interview.mode,
            "locale": interview.locale, "respondent": interview.respondent,
            "created_at": iso(interview.created_at), "updated_at": iso(interview.updated_at),
            "completed_at": iso(interview.completed_at), "completion_reason": interview.completion_reason,
            "messages_count": len(interview.transcript),
            "transcript": [m.to_json() for m in interview.transcript],
            "analysis": analysis, "feedback": interview.feedback}


async def get_interview(request: Request, caller: Caller) -> Response:
    interview = caller.state.find_interview(request.path_params["interview_id"], caller.spec.project)
    if interview is None:
        raise ApiError(404, "not_found", wire.INTERVIEW_NOT_FOUND)
    return JSONResponse(interview_json(interview, caller.state))
