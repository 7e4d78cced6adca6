"""`koji-mcp sandbox`: run the local Koji-compatible API in the foreground."""

from __future__ import annotations

import argparse
import sys

from koji_mcp.config import EXIT_USAGE, is_loopback


def run_sandbox_command(args: argparse.Namespace) -> int:
    if not is_loopback(args.host):
        print(f"koji-mcp sandbox: refusing --host {args.host}: the sandbox's /_sandbox/ endpoints expose session "
              "tokens and fault switches to anyone who can reach them; bind a loopback address such as 127.0.0.1",
              file=sys.stderr)
        return EXIT_USAGE
    from koji_mcp.sandbox import SandboxConfig, load_brief, run_sandbox

    try:
        brief = load_brief(args.brief) if args.brief else None
    except (OSError, ValueError) as exc:
        print(f"koji-mcp sandbox: cannot use brief {args.brief}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.rate_limit < 1:
        print("koji-mcp sandbox: --rate-limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    config = SandboxConfig(
        rate_limit=args.rate_limit,
        brief=brief,
        analysis_delay=args.analysis_delay,
        retry_after_header=args.retry_after_header,
    )
    try:
        run_sandbox(config, host=args.host, port=args.port)
    except OSError as exc:
        print(f"koji-mcp sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0
