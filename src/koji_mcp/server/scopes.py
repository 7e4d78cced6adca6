"""The OAuth scopes koji-mcp's tools need (no MCP import: the registry and doctor read them too)."""

READ_SCOPE = "interviews:read"  # get/list/search/fetch, get_batch and the resources
WRITE_SCOPE = "interviews:write"  # start, batch-start, send message, complete, cancel_batch (spends Koji credits)
ALL_SCOPES: tuple[str, ...] = (READ_SCOPE, WRITE_SCOPE)
