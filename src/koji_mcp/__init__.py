"""koji-mcp: an MCP server that runs Koji user-research interviews from AI assistants."""

__version__ = "0.1.0"

USER_AGENT = f"koji-mcp/{__version__}"
