"""`koji-mcp serve`: validate settings, open shared services, run the chosen transport."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys

import anyio

from koji_mcp.server.auth import AuthConfigError, is_loopback, parse_tokens
from koji_mcp.config import EXIT_USAGE, ConfigError, Settings
from koji_mcp.logs import setup_logging
from koji_mcp.server.tools import UnknownToolName, check_tool_names

logger = logging.getLogger("koji_mcp")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings.load(
        base_url=args.base_url,
        timeout=args.timeout,
        state_dir=args.state_dir,
        sandbox=True if args.sandbox else None,
        read_only=args.read_only,
        tools=args.tools,
    )


def run_serve(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        settings = settings_from_args(args)
        settings.require_api_key()
        check_tool_names(settings.tools)
        tokens = parse_tokens(args.auth_token)
        check_exposure(args, tokens)
    except (ConfigError, UnknownToolName, AuthConfigError) as exc:
        print(f"koji-mcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.tokens = tokens
    if settings.key_warning and not settings.sandbox:
        logger.warning(settings.key_warning)
    try:
        anyio.run(_serve, settings, args)
    except (OSError, sqlite3.Error) as exc:
        print(f"koji-mcp: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def check_exposure(args: argparse.Namespace, tokens: list) -> None:
    """Refuse to expose the Koji key's spending power to the network without auth."""
    if args.transport == "stdio":
        if tokens:
            raise ConfigError("--auth-token applies to the HTTP transports (stdio is already private to its host)")
        return
    if not is_loopback(args.host) and not tokens and not args.insecure_no_auth:
        raise ConfigError(
            f"refusing to serve on {args.host} without auth: anyone who can reach it could spend your Koji "
            "credits. Add --auth-token (or KOJI_MCP_AUTH_TOKEN), or --insecure-no-auth if you really mean it"
        )
    if args.allowed_host and not tokens and not args.insecure_no_auth:
        raise ConfigError(
            "refusing --allowed-host without auth: a proxy or tunnel makes this loopback port public. "
            "Add --auth-token (or KOJI_MCP_AUTH_TOKEN), or --insecure-no-auth if you really mean it"
        )


async def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from koji_mcp.server.app import build_server, run_transport
    from koji_mcp.interviews.services import open_services

    async with open_services(settings, jobs=True) as services:
        path = "/sse" if args.transport == "sse" else "/mcp"
        shown = f"[{args.host}]" if ":" in args.host else args.host
        public = args.public_url or f"http://{shown}:{args.port}"
        server = build_server(settings, services, tokens=args.tokens, public_url=public, mcp_path=path)
        await run_transport(
            server,
            args.transport,
            host=args.host,
            port=args.port,
            allowed_hosts=args.allowed_host,
            allowed_origins=args.allowed_origin,
        )
