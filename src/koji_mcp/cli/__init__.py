"""The `koji-mcp` command: main.py parses arguments; one module per subcommand, imported lazily."""
