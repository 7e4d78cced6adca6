"""Where koji-mcp meets the MCP SDK beyond `MCPServer`'s public API, each internal behind one function.

- `ServerContext` is `Context[Services]`, declared once: tools take `ctx: ServerContext` and get the
  shared services with `services_of(ctx)`.
- `lowlevel_server(server)`: `logging/setLevel` (a spec method the SDK's extension mechanism may not
  bind, see `mcp.server.extension.MethodBinding`) and a `completion/complete` handler that sees the
  request context can only be registered on the low-level server, which `MCPServer` keeps in
  `_lowlevel_server`; so can `resources/subscribe`. `serve_stdio` runs the SDK's stdio loop with
  a read stream that answers malformed frames (FrameErrorReporter) instead of dropping them.
- `authenticated_token()`: the auth context (`mcp.server.auth.middleware.auth_context`).

tests/test_sdk_internals.py fails loudly when an SDK upgrade moves any of them; nothing here falls
back silently.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from koji_mcp.interviews.services import Services

ServerContext = Context[Services]


def services_of(ctx: ServerContext) -> Services:
    """The process-wide services the lifespan opened (see interviews/services.py)."""
    return ctx.request_context.lifespan_context


logger = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class SDKInternalMoved(RuntimeError):
    """An SDK internal koji-mcp relies on is gone: pin the SDK (pyproject) or port this module."""


def lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    """The low-level `Server` inside an `MCPServer` (mcp 2.3: `MCPServer._lowlevel_server`)."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if not isinstance(lowlevel, Server):
        raise SDKInternalMoved("MCPServer._lowlevel_server is no longer a mcp.server.lowlevel.Server")
    return lowlevel


class FrameErrorReporter:
    """The stdio read stream, answering frames the SDK could not parse instead of dropping them.

    The SDK's stdio transport puts an `Exception` on the read stream for every line that is not a
    JSON-RPC message, and the dispatcher drops it with a DEBUG log. Here each one becomes a warning on
    stderr (without the frame's content, which may hold secrets) and a JSON-RPC error with id null:
    -32700 for a line that is not JSON, -32600 for JSON that is not a JSON-RPC message.
    """

    def __init__(self, inner: Any, write_stream: Any) -> None:
        self._inner = inner
        self._write = write_stream

    @property
    def last_context(self) -> Any:  # the dispatcher reads the sender's context from here
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            item = await self._inner.receive()
            if not isinstance(item, Exception):
                return item
            await self._report(item)

    async def _report(self, exc: Exception) -> None:
        not_json = isinstance(exc, ValidationError) and any(e["type"] == "json_invalid" for e in exc.errors())
        code, message = (PARSE_ERROR, "Parse error") if not_json or not isinstance(exc, ValidationError) else (
            INVALID_REQUEST, "Invalid Request: not a JSON-RPC 2.0 message")
        logger.warning("dropped a malformed frame on stdin (%s, JSON-RPC %d); answered with an error", message, code)
        error = types.JSONRPCError(jsonrpc="2.0", id=None, error=types.ErrorData(code=code, message=message))
        await self._write.send(SessionMessage(error))

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> FrameErrorReporter:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> FrameErrorReporter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def serve_stdio(server: MCPServer[Any]) -> None:
    """`MCPServer.run_stdio_async`, with malformed frames answered (see FrameErrorReporter)."""
    from mcp.server.stdio import stdio_server

    lowlevel = lowlevel_server(server)
    async with stdio_server() as (read_stream, write_stream):
        await lowlevel.run(FrameErrorReporter(read_stream, write_stream), write_stream,
                           lowlevel.create_initialization_options())


def authenticated_token() -> Any:
    """The SDK's access token for the current request, or None (stdio, no auth).

    An SDK internal (mcp 2.3 has no public accessor): an ImportError here means the SDK moved it, and
    must fail loudly rather than make every caller "local" (tests/test_sdk_internals.py checks it).
    """
    from mcp.server.auth.middleware.auth_context import get_access_token

    return get_access_token()
