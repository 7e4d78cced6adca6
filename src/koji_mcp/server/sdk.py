"""Where koji-mcp meets the MCP SDK beyond `MCPServer`'s public API: the typed tool context, and the
one private attribute the SDK gives no public way around.

- `ServerContext` is `Context[Services]`, declared once: tools take `ctx: ServerContext` and get the
  shared services with `services_of(ctx)`.
- `lowlevel_server(server)`: `logging/setLevel` (a spec method the SDK's extension mechanism may not
  bind, see `mcp.server.extension.MethodBinding`) and a `completion/complete` handler that sees the
  request context can only be registered on the low-level server, which `MCPServer` keeps in
  `_lowlevel_server`. tests/test_protocol.py fails loudly if that attribute moves.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context, MCPServer

from koji_mcp.interviews.services import Services

ServerContext = Context[Services]


def services_of(ctx: ServerContext) -> Services:
    """The process-wide services the lifespan opened (see interviews/services.py)."""
    return ctx.request_context.lifespan_context


def lowlevel_server(server: MCPServer[Any]) -> Any:
    """The SDK's low-level `Server` behind `server` (mcp 2.3: `MCPServer._lowlevel_server`)."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None or not callable(getattr(lowlevel, "add_request_handler", None)):
        raise RuntimeError(
            "the MCP SDK no longer keeps its low-level server in MCPServer._lowlevel_server: "
            "update koji_mcp.server.sdk.lowlevel_server for this SDK version"
        )
    return lowlevel
