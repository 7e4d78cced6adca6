"""Our domain: the ledger, starting exactly once, the batch engine, shaping Koji's answers, the services.

Nothing here knows MCP."""
