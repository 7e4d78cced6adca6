"""Koji's REST API and nothing else: the client, its typed errors, wire models, reply parsing, rate limits.

Nothing here knows MCP or our ledger."""
