"""Subcommand implementations, imported lazily by cli.py."""
