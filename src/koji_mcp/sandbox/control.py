"""Sandbox-only control endpoints under ``/_sandbox/`` (no auth, no rate limit, not logged).

They let tests and demos look inside the emulator (request log, interviews with their
session tokens) and steer it (reset, queue faults). Nothing like this exists on Koji.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import wire
from .handlers import interview_json
from .state import Fault, SandboxState
from .wire import ApiError, invalid

__all__ = ["control_routes"]

_FAULT_FIELDS = ("method", "path", "status", "json", "body", "content_type", "headers", "times", "delay",
                 "after_processing")


def _state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


async def list_requests(request: Request) -> Response:
    return JSONResponse({"requests": _state(request).requests})


async def clear_requests(request: Request) -> Response:
    _state(request).requests.clear()
    return JSONResponse({"cleared": True})


async def reset(request: Request) -> Response:
    _state(request).reset()
    return JSONResponse({"reset": True})


async def list_interviews(request: Request) -> Response:
    state = _state(request)
    items = [{**interview_json(i, state), "project": i.project_id, "session_token": i.session_token,
              "question_index": i.question_index} for i in state.interviews.values()]
    return JSONResponse({"interviews": items})


async def list_faults(request: Request) -> Response:
    return JSONResponse({"faults": [f.to_json() for f in _state(request).faults]})


async def clear_faults(request: Request) -> Response:
    _state(request).faults.clear()
    return JSONResponse({"cleared": True})


async def add_fault(request: Request) -> Response:
    try:
        fault = parse_fault(await wire.read_object(request))
    except ApiError as exc:
        return exc.response()
    _state(request).faults.append(fault)
    return JSONResponse({"fault": fault.to_json()}, status_code=201)


def parse_fault(data: dict[str, Any]) -> Fault:
    """Validate a fault body (400 naming the field on error)."""
    wire.check_fields(data, _FAULT_FIELDS)
    status = data.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
        raise invalid("'status' must be an HTTP status code (100-599).")
    method = wire.optional_str(data, "method")
    path = wire.optional_str(data, "path")
    body = wire.optional_str(data, "body")
    content_type = wire.optional_str(data, "content_type")
    headers = data.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise invalid("'headers' must be an object of string values.")
    times = data.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise invalid("'times' must be a positive integer.")
    delay = data.get("delay") or 0.0
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise invalid("'delay' must be a non-negative number of seconds.")
    after = data.get("after_processing", False)
    if not isinstance(after, bool):
        raise invalid("'after_processing' must be a boolean.")
    if status is None and ("json" in data or body is not None or after):
        raise invalid("'status' is required when the fault replaces the response.")
    if status is None and not delay:
        raise invalid("A fault needs a 'status' or a 'delay'.")
    return Fault(status=status, method=method.upper() if method else None, path=path, json=data.get("json"),
                 has_json="json" in data, body=body, content_type=content_type, headers=dict(headers),
                 times=times, delay=float(delay), after_processing=after)


def control_routes() -> list[Route]:
    return [
        Route("/_sandbox/requests", list_requests, methods=["GET"]),
        Route("/_sandbox/requests", clear_requests, methods=["DELETE"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/interviews", list_interviews, methods=["GET"]),
        Route("/_sandbox/faults", list_faults, methods=["GET"]),
        Route("/_sandbox/faults", add_fault, methods=["POST"]),
        Route("/_sandbox/faults", clear_faults, methods=["DELETE"]),
    ]
