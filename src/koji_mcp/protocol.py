"""Protocol handlers MCPServer does not provide out of the box (filled in by the conformance work)."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer


def register_protocol_extras(server: MCPServer) -> None:
    """Register extra MCP request handlers on `server` (none yet)."""
