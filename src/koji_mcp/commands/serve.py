"""`koji-mcp serve`: validate settings, open shared services, run the chosen transport."""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys

import anyio

from koji_mcp.config import ConfigError, Settings
from koji_mcp.logs import setup_logging
from koji_mcp.tools import UnknownToolName, select_tools

logger = logging.getLogger("koji_mcp")
EXIT_USAGE = 2


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
        select_tools(read_only=settings.read_only, names=settings.tools)
    except (ConfigError, UnknownToolName) as exc:
        print(f"koji-mcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if settings.key_warning and not settings.sandbox:
        logger.warning(settings.key_warning)
    try:
        anyio.run(_serve, settings, args)
    except (OSError, sqlite3.Error) as exc:
        print(f"koji-mcp: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from koji_mcp.server import build_server, run_transport
    from koji_mcp.services import open_services

    async with open_services(settings) as services:
        server = build_server(settings, services)
        await run_transport(
            server,
            args.transport,
            host=args.host,
            port=args.port,
            allowed_hosts=args.allowed_host,
            allowed_origins=args.allowed_origin,
        )
