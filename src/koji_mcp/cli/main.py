"""The `koji-mcp` command: argument parsing and dispatch to subcommands.

`koji-mcp` with no subcommand is `koji-mcp serve` over stdio, which is what desktop hosts launch.
Subcommand modules are imported lazily so that starting the server imports only what it needs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from koji_mcp import __version__
from koji_mcp.config import EXIT_USAGE, LOG_LEVELS

# Subcommands whose runner takes the parsed arguments ("demo" has its own branch in main()).
RUNNERS = {
    "serve": "koji_mcp.cli.serve:run_serve",
    "sandbox": "koji_mcp.cli.sandbox:run_sandbox_command",
    "batch": "koji_mcp.cli.batch:run_batch_command",
    "doctor": "koji_mcp.cli.doctor:run_doctor_command",
    "config": "koji_mcp.cli.host_config:run_config_command",
    "ledger": "koji_mcp.cli.ledger:run_ledger_command",
}
SUBCOMMANDS = ("serve", "sandbox", "demo", "batch", "doctor", "config", "ledger")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2) that points at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def port_number(text: str) -> int:
    """argparse type for --port: an integer from 1 to 65535 (argparse turns the error into exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 65535 (got {text!r})") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 1 to 65535 (got {port})")
    return port


def _koji_args(p: argparse.ArgumentParser, *, sandbox_help: str, state_dir: bool = True) -> None:
    """The flags every Koji-talking subcommand shares (same names, same meaning everywhere)."""
    p.add_argument("--sandbox", action="store_true", help=sandbox_help)
    p.add_argument("--base-url", help="Koji API origin (env KOJI_BASE_URL; default https://koji.so)")
    if state_dir:
        p.add_argument("--state-dir", help="ledger directory (env KOJI_MCP_STATE_DIR; ':memory:' keeps nothing)")
    _database_arg(p)


def _database_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", metavar="URL",
                   help="keep the ledger, batch jobs, OAuth state and Koji pacing in PostgreSQL, shared by "
                   "replicas: postgresql://USER:PASSWORD@HOST:5432/DB (needs `pip install 'koji-mcp[postgres]'`; "
                   "prefer the env KOJI_MCP_DATABASE_URL, as flags show in `ps`; default: SQLite in the state dir)")


def _insecure_upstream_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-insecure-upstream", action="store_true",
                   help="allow a plain http:// KOJI_BASE_URL on another machine (the API key then travels "
                   "unencrypted; env KOJI_MCP_ALLOW_INSECURE_UPSTREAM)")


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the MCP server (default)",
        description="Run the koji-mcp MCP server. Hosts such as Claude Desktop launch it over stdio; "
        "use --transport streamable-http or sse to serve MCP clients over HTTP.",
        epilog="Environment: KOJI_API_KEY (required unless --sandbox), KOJI_BASE_URL (default https://koji.so), "
        "KOJI_TIMEOUT, KOJI_CONNECT_TIMEOUT, KOJI_MCP_STATE_DIR, KOJI_MCP_READ_ONLY, KOJI_MCP_TOOLS, "
        "KOJI_MCP_AUTH_TOKEN, KOJI_MCP_LOG_LEVEL, KOJI_MCP_PUBLIC_URL, KOJI_MCP_OAUTH_ISSUER, "
        "KOJI_MCP_OAUTH_OWNER_CLAIM, KOJI_MCP_OAUTH, KOJI_MCP_DATABASE_URL, KOJI_MCP_STATELESS, KOJI_MCP_REQUEST_STATE_KEYS (sealing keys "
        "replicas share, comma-separated, env only). Flags override the environment. Over HTTP, GET /healthz answers "
        "liveness and GET /readyz readiness (503 with a reason until the ledger answers), both without auth.",
    )
    p.add_argument("--transport", choices=["stdio", "sse", "streamable-http", "http"], default="stdio",
                   help="how MCP clients connect: stdio (default, for desktop hosts), streamable-http "
                   "(endpoint /mcp; `http` is the same, as hosts call it) or sse (endpoint /sse)")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to bind for HTTP transports (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=port_number, default=8000, help="port for HTTP transports, 1-65535 (default 8000)")
    _koji_args(p, sandbox_help="start a local Koji sandbox in-process and use it instead of koji.so "
               "(no account or API key needed)", state_dir=False)
    _insecure_upstream_arg(p)
    p.add_argument("--timeout", type=float, help="seconds to wait for Koji's answer (env KOJI_TIMEOUT; default 30)")
    p.add_argument("--state-dir",
                   help="where the interview ledger lives (env KOJI_MCP_STATE_DIR; default "
                   "$XDG_DATA_HOME/koji-mcp or ~/.local/share/koji-mcp; ':memory:' keeps nothing)")
    p.add_argument("--read-only", action="store_true", default=None,
                   help="register only read tools (env KOJI_MCP_READ_ONLY)")
    p.add_argument("--tools", help="comma-separated allow-list of tool names (env KOJI_MCP_TOOLS)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="HOST",
                   help="extra Host header value to accept on HTTP transports, e.g. mcp.example.com "
                   "behind a proxy or tunnel (repeatable)")
    p.add_argument("--allowed-origin", action="append", default=[], metavar="ORIGIN",
                   help="extra Origin to accept on HTTP transports, e.g. https://chatgpt.com (repeatable)")
    p.add_argument("--auth-token", action="append", default=[], metavar="[NAME=]TOKEN",
                   help="require `Authorization: Bearer TOKEN` from HTTP clients (env KOJI_MCP_AUTH_TOKEN, "
                   "comma-separated); repeat for several clients, NAME=TOKEN names each (interviews are private "
                   "to the client that started them)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow binding a non-loopback --host without --auth-token (anyone who can reach it "
                   "can spend your Koji credits)")
    p.add_argument("--oauth", action="store_const", const="builtin", default=None,
                   help="be an OAuth 2.1 authorization server too (env KOJI_MCP_OAUTH=builtin), so ChatGPT and "
                   "claude.ai connectors can sign in: people approve a connector on this server's consent page "
                   "with their client token from --auth-token as the access code (needs --transport "
                   "streamable-http or sse, and --public-url https://... behind a tunnel or proxy)")
    p.add_argument("--public-url", metavar="URL",
                   help="the URL clients use to reach this server, e.g. https://mcp.example.com (env "
                   "KOJI_MCP_PUBLIC_URL; default http://HOST:PORT). With OAuth the resource URL is it + /mcp, "
                   "and it must be https unless everything is on loopback")
    p.add_argument("--oauth-issuer", metavar="URL",
                   help="accept JWT access tokens from this external OAuth issuer, e.g. https://idp.example.com "
                   "(env KOJI_MCP_OAUTH_ISSUER): its JWKS is discovered from its metadata; tokens need aud = "
                   "the resource URL and the scope interviews:read (interviews:write for write tools)")
    p.add_argument("--oauth-owner-claim", metavar="CLAIM",
                   help="the JWT claim that names the user who owns interviews (env KOJI_MCP_OAUTH_OWNER_CLAIM; "
                   "default sub)")
    p.add_argument("--stateless", action="store_true", default=None,
                   help="streamable HTTP without sessions, so any of several replicas behind a load balancer can "
                   "answer any request (env KOJI_MCP_STATELESS; needs --transport streamable-http and "
                   "KOJI_MCP_REQUEST_STATE_KEYS, the sealing keys all replicas share)")
    p.add_argument("--log-level", choices=LOG_LEVELS,
                   help="stderr log level (env KOJI_MCP_LOG_LEVEL; default INFO)")


def _sandbox_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sandbox",
        help="run a local Koji-compatible API for trying and testing koji-mcp",
        description="Run a local, deterministic emulator of Koji's interview API. It prints its base URL "
        "and demo API key; point koji-mcp at it with KOJI_BASE_URL and KOJI_API_KEY.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="loopback interface to bind (default 127.0.0.1; the sandbox's /_sandbox/ control "
                   "endpoints show session tokens, so other machines are refused)")
    p.add_argument("--port", type=port_number, default=8787, help="port to bind, 1-65535 (default 8787)")
    p.add_argument("--brief", metavar="FILE", help="research brief JSON to use instead of the built-in one")
    p.add_argument("--rate-limit", type=int, default=60, help="requests per minute per API key (default 60)")
    p.add_argument("--analysis-delay", type=float, default=1.0,
                   help="seconds after completion before the analysis is ready (default 1.0)")
    p.add_argument("--retry-after-header", action="store_true",
                   help="send Retry-After on 429 like Koji's older docs (default: X-RateLimit-Reset only)")


def _demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run a full interview through a real MCP client over stdio, on the sandbox",
        description="Start the sandbox, launch koji-mcp over stdio under the MCP SDK's client, and run "
        "an interview end to end, printing each step. Needs no account and no network. With --app, serve "
        "the interview's MCP App view in a small local host page instead, to answer it yourself in a browser.",
    )
    p.add_argument("--app", action="store_true",
                   help="serve the interview view (ui://koji/interview.html) in a local host page and open it")
    p.add_argument("--port", type=int, default=None, help="port of the --app page on 127.0.0.1 (default 8765)")
    p.add_argument("--no-browser", action="store_true", help="with --app: print the page's URL, do not open it")


def _batch_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="invite every participant of a CSV file (resumable, exactly once)",
        description="Start an interview for each row of a participants CSV. Columns external_id and "
        "display_name; every other column becomes respondent metadata (numbers and true/false are typed). "
        "The whole file is validated before anything is sent. Participants already in the ledger are "
        "skipped, so rerunning after a failure or Ctrl-C resumes where it stopped.",
        epilog="Uses KOJI_API_KEY (not needed for --dry-run or --sandbox), KOJI_BASE_URL and KOJI_MCP_STATE_DIR "
        "like `serve`; --sandbox keeps its ledger and interviews in STATE_DIR/sandbox/. Exit code 0 when "
        "everyone was started or skipped, 1 when some failed, are unknown or were not reached (an unknown start "
        "stays unknown on every rerun until `koji-mcp ledger resolve` settles it), 2 on bad input or a state dir "
        "or ledger that is unsafe to use (others can write it, or it lost rows).",
    )
    p.add_argument("file", help="participants CSV (UTF-8, header row required)")
    p.add_argument("--mode", choices=["text", "voice"], help="interview mode for all (default: project setting)")
    p.add_argument("--locale", help="locale for all, e.g. en, es, pt-BR (default: project setting)")
    p.add_argument("--concurrency", type=int, default=4, help="starts in flight at once, 1-16 (default 4)")
    p.add_argument("--dry-run", action="store_true", help="validate and show what would happen; send nothing")
    p.add_argument("--force", action="store_true",
                   help="also start participants whose external_id is already in the ledger")
    p.add_argument("--out", metavar="RESULTS.csv",
                   help="where to write results (default: FILE.results.csv, or FILE.dry-run.csv for --dry-run)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a results file that lists started interviews the new results would not keep")
    _koji_args(p, sandbox_help="run against an in-process sandbox (for trying it out)")
    _insecure_upstream_arg(p)
    p.add_argument("--log-level", default="WARNING", choices=LOG_LEVELS,
                   help="stderr log level (default WARNING)")


def _doctor_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the API key, its permissions, the base URL, Koji's answer and the state directory",
        description="Check the setup step by step, one line per check, and say what to fix. Each permission "
        "the enabled tools need is probed with a request Koji must refuse (no credit is spent). Ends with "
        "'N problems, M warnings'; exit code 1 when a problem means a tool cannot work, 2 if the state "
        "directory is unsafe to use (others own or can write it, a ledger file is a symlink or someone "
        "else's, or the ledger lost rows; serve and batch refuse such a state dir too).",
    )
    _koji_args(p, sandbox_help="check against an in-process sandbox")


def _config_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="print (or write) a ready MCP config entry for Claude Desktop, Claude Code, Cursor, VS Code, "
        "Windsurf, Zed or ChatGPT",
        description="Print a config snippet with absolute paths to this installation (hosts do not inherit "
        "your PATH), and where the host's config file lives on macOS, Windows and Linux. For Claude Code it "
        "prints the `claude mcp add` command to run; for ChatGPT, the steps to serve it over HTTPS.",
    )
    p.add_argument("host", choices=["claude", "claude-code", "cursor", "vscode", "windsurf", "zed", "chatgpt"],
                   help="which MCP host")
    p.add_argument("--write", action="store_true",
                   help="merge the entry into the host's config file (after a backup; other servers are kept)")
    p.add_argument("--config-path", metavar="PATH", help="the config file to write (default: the host's usual one)")
    p.add_argument("--sandbox", action="store_true", help="configure koji-mcp to run on its built-in sandbox")
    p.add_argument("--name", default="koji", help="server name in the host's config (default koji)")


def _ledger_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ledger",
        help="settle by hand a start whose outcome is unknown",
        description="Work on the local interview ledger. `koji-mcp ledger resolve --help` explains.",
    )
    actions = p.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    r = actions.add_parser(
        "resolve",
        help="record whether an 'unknown' start did start at Koji",
        description="A start that may have reached Koji (a timeout, a dropped connection, a 5xx, or koji-mcp "
        "stopped mid-request) stays in the ledger as 'unknown' or 'starting': it is never sent again, and every "
        "batch reports it as unknown (exit 1). Check Koji's dashboard, then record what you found. The ledger "
        "keeps who settled it and when.",
        epilog="Examples: `koji-mcp ledger resolve unknown-3f2a… --started 8d41c0de-…` (it started: later runs "
        "skip the person; koji-mcp never got its session token, so it cannot relay messages to it or complete "
        "it, but get_interview reads it); `koji-mcp ledger resolve 12 --not-started` (it did not: the next batch "
        "invites the person). Exit code 0 when recorded, 2 when the row is unknown or already settled.",
    )
    r.add_argument("row", metavar="INTERVIEW_OR_ROW",
                   help="the row's id as batch results and list_interviews show it (unknown-… or pending-…), "
                   "its row number in the ledger, or the participant's external_id")
    outcome = r.add_mutually_exclusive_group(required=True)
    outcome.add_argument("--started", metavar="INTERVIEW_ID",
                         help="it did start: Koji's id for the interview (from Koji's dashboard)")
    outcome.add_argument("--not-started", action="store_true",
                         help="it did not start: free its external_id so a rerun invites the person")
    r.add_argument("--by", metavar="NAME", help="who settles it, recorded in the ledger (default: your login name)")
    r.add_argument("--state-dir", help="ledger directory (env KOJI_MCP_STATE_DIR; default as for serve)")
    _database_arg(r)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with `only` one subcommand's (startup builds just what it parses)."""
    parser = Parser(
        prog="koji-mcp",
        description="MCP server for Koji (koji.so) AI-led user-research interviews. With no subcommand, "
        "serves MCP over stdio (what Claude Desktop, Cursor and VS Code launch).",
        epilog="Run `koji-mcp SUBCOMMAND --help` for a subcommand's flags.",
    )
    parser.add_argument("--version", action="version", version=f"koji-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    builders = {"serve": _serve_parser, "sandbox": _sandbox_parser, "demo": _demo_parser,
                "batch": _batch_parser, "doctor": _doctor_parser, "config": _config_parser,
                "ledger": _ledger_parser}
    for name, add in builders.items():
        if only is None or name == only:
            add(sub)
    return parser


def _full_help(parser: argparse.ArgumentParser) -> str:
    """Top-level --help shows every subcommand's flags too, so nothing is hidden a level down."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [parser.format_help()]
    for name, child in sub.choices.items():
        parts.append(f"\n=== koji-mcp {name} ===\n{child.format_help()}")
    return "".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["-h"], ["--help"]):
        print(_full_help(build_parser()))
        return 0
    if args_list and not args_list[0].startswith("-") and args_list[0] not in SUBCOMMANDS:
        print(f"koji-mcp: unknown subcommand {args_list[0]!r}; choose from {', '.join(SUBCOMMANDS)} "
              "(koji-mcp --help explains each)", file=sys.stderr)
        return EXIT_USAGE
    if not args_list or (args_list[0] not in SUBCOMMANDS and args_list[0] not in ("--version",)):
        args_list.insert(0, "serve")
    parser = build_parser(only=args_list[0] if args_list[0] in SUBCOMMANDS else None)
    args, extra = parser.parse_known_args(args_list)
    if extra:  # report it with the subcommand's usage, not the top level's
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "transport", None) == "http":
        args.transport = "streamable-http"
    try:
        if args.command in RUNNERS:  # imported only when chosen: starting the server imports only what it needs
            module, function = RUNNERS[args.command].split(":")
            return getattr(importlib.import_module(module), function)(args)
        if args.command == "demo":
            if args.app:
                from koji_mcp.cli.app_demo import run_app_demo

                return run_app_demo(8765 if args.port is None else args.port, open_browser=not args.no_browser)
            if args.port is not None or args.no_browser:
                sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
                sub.choices["demo"].error("--port and --no-browser only apply with --app")
            from koji_mcp.cli.demo import run_demo

            return run_demo()
    except KeyboardInterrupt:
        return 130
    parser.print_help(sys.stderr)
    return EXIT_USAGE
