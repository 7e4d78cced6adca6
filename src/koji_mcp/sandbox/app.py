"""The Starlette app: Koji's routes behind authentication, rate limiting and permissions.

Every API route runs the same pipeline, in Koji's order: API key (401 ``unauthorized``)
→ per-key sliding-window rate limit (429 ``rate_limited``) → permission (403
``forbidden``) → the handler (400 → 404/401/409/422). Every response from an API
route – success or error – carries ``X-RateLimit-Limit/-Remaining/-Reset``. Requests
without a usable key are not counted and report a full, idle window. Disabled or
unknown routes are left to Starlette: a plain-text ``404 Not Found`` (or ``405``) with
no JSON body, which is how a client recognises a missing route.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import handlers, wire
from .config import PERM_CHAT, PERM_COMPLETE, PERM_READ, PERM_START, SandboxConfig
from .control import control_routes
from .handlers import Caller
from .middleware import RecorderMiddleware
from .state import SandboxState
from .wire import ApiError

__all__ = ["create_app"]

log = logging.getLogger(__name__)
Handler = Callable[[Request, Caller], Awaitable[Response]]


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        return None
    return token


def api(permission: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler in the auth → rate limit → permission pipeline."""

    async def endpoint(request: Request) -> Response:
        state: SandboxState = request.app.state.sandbox
        now = state.clock()
        key = _bearer(request)
        spec = state.keys.get(key) if key else None
        if key is None or spec is None or spec.revoked:
            response: Response = wire.error_response(401, "unauthorized", wire.UNAUTHORIZED)
            response.headers.update(state.limiter.idle(now).headers())
            return response
        decision = state.limiter.hit(key, now)
        if not decision.allowed:
            response = wire.error_response(429, "rate_limited", wire.RATE_LIMITED)
            if state.config.retry_after_header:
                response.headers["Retry-After"] = str(max(1, math.ceil(decision.reset_at - now)))
        else:
            try:
                if permission not in spec.permissions:
                    raise ApiError(403, "forbidden", wire.FORBIDDEN)
                state.sync()  # another process may have changed the state file
                response = await handler(request, Caller(key, spec, state))
                if request.method != "GET":
                    state.sync(write=True)
            except ApiError as exc:
                response = exc.response()
            except Exception:  # a sandbox bug: answer like a server error, keep the trace on stderr
                log.exception("sandbox handler failed")
                response = wire.error_response(500, "internal_error", wire.INTERNAL)
        response.headers.update(decision.headers())
        return response

    return endpoint


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh emulator; ``app.state.sandbox`` is its :class:`SandboxState`."""
    config = config or SandboxConfig()
    state = SandboxState(config)
    routes = [Route("/api/v1/interviews/start", api(PERM_START, handlers.start_interview), methods=["POST"])]
    for name in sorted(config.message_routes):
        routes.append(Route(f"/api/v1/interviews/{{interview_id}}/{name}",
                            api(PERM_CHAT, handlers.send_message), methods=["POST"]))
    if "current" in config.complete_routes:
        routes.append(Route("/api/interview/complete", api(PERM_COMPLETE, handlers.complete_current),
                            methods=["POST"]))
    if "legacy" in config.complete_routes:
        routes.append(Route("/api/v1/interviews/{interview_id}/complete",
                            api(PERM_COMPLETE, handlers.complete_legacy), methods=["POST"]))
    routes.append(Route("/api/v1/interviews/{interview_id}", api(PERM_READ, handlers.get_interview),
                        methods=["GET"]))
    routes += control_routes()
    app = Starlette(routes=routes, middleware=[Middleware(RecorderMiddleware, state=state)])
    app.state.sandbox = state
    return app
