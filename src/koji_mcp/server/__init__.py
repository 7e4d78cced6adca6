"""The MCP face: build_server and transports, auth, tools, resources, prompts, protocol extras."""
