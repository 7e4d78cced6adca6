"""`python -m koji_mcp` behaves exactly like the `koji-mcp` command."""

from koji_mcp.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
