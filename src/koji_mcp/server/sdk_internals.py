"""The SDK internals koji-mcp relies on, each behind one function (mcp 2.3 has no public API for them).

- `lowlevel_server`: `MCPServer._lowlevel_server`, the only way to register `logging/setLevel` and
  `completion/complete` and to run the stdio loop with our own read stream (see `serve_stdio`).
- the auth context (`mcp.server.auth.middleware.auth_context.get_access_token`) is reached through
  `interviews.services.authenticated_token` (that layer may not import this one).

tests/test_sdk_internals.py fails loudly when an SDK upgrade moves any of them; nothing here falls
back silently.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

logger = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class SDKInternalMoved(RuntimeError):
    """An SDK internal koji-mcp relies on is gone: pin the SDK (pyproject) or port this module."""


def lowlevel_server(server: MCPServer[Any]) -> Server[Any]:
    """The low-level `Server` inside an `MCPServer`."""
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
