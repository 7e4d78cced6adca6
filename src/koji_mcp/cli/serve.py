"""`koji-mcp serve`: validate settings, open shared services, run the chosen transport."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import urlsplit

import anyio

from koji_mcp.config import EXIT_USAGE, GENERATE_STATE_KEY, ConfigError, Settings, is_loopback
from koji_mcp.server.auth import AuthConfigError, parse_tokens
from koji_mcp.interviews.ledger import StorageError
from koji_mcp.logs import setup_logging
from koji_mcp.cli.failures import ledger_failure
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
        log_level=args.log_level,
        auth_tokens=args.auth_token,
        public_url=args.public_url,
        oauth_issuer=args.oauth_issuer,
        oauth_owner_claim=args.oauth_owner_claim,
        oauth=args.oauth,
        allow_insecure_upstream=True if args.allow_insecure_upstream else None,
        database_url=args.database_url,
        stateless=True if args.stateless else None,
    )


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        setup_logging(settings.log_level)
        settings.require_api_key()
        settings.require_secure_upstream()
        check_tool_names(settings.tools)
        tokens = parse_tokens(token.get_secret_value() for token in settings.auth_tokens)
        check_oauth(settings, args, tokens)
        check_stateless(settings, args)
        check_exposure(args, tokens, settings)
    except (ConfigError, UnknownToolName, AuthConfigError) as exc:
        print(f"koji-mcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.tokens = tokens
    if args.transport == "stdio" and sys.stdin.isatty():  # started by hand: say why it seems to hang
        print("koji-mcp: this speaks MCP over stdio and waits for an MCP client (Claude Desktop, Cursor, …) on "
              "stdin; to see it work, run `koji-mcp demo` (Ctrl-C to quit)", file=sys.stderr, flush=True)
    if settings.key_warning and not settings.sandbox:
        logger.warning(settings.key_warning)
    if args.transport != "stdio":
        from koji_mcp.server.app import PortUnavailable, bind_listener

        try:  # before anything is logged or opened: a taken port is said at once, and nothing claims it
            args.listener = bind_listener(args.host, args.port)
        except PortUnavailable as exc:
            print(f"koji-mcp: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        anyio.run(_serve, settings, args)
    except ConfigError as exc:  # e.g. an unsafe state dir (interviews.ledger.UnsafeStateDir)
        print(f"koji-mcp: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - ledger failures are explained, OS errors summed up, the rest re-raise
        failure = ledger_failure(exc, settings.ledger_dir)
        if failure is not None:
            print(f"koji-mcp: {failure[0]}", file=sys.stderr)
            return failure[1]
        if isinstance(exc, OSError | StorageError):
            print(f"koji-mcp: cannot start: {exc}", file=sys.stderr)
            return 1
        raise
    finally:
        listener = getattr(args, "listener", None)
        if listener is not None:
            listener.close()
    return 0


def check_exposure(args: argparse.Namespace, tokens: list, settings: Settings) -> None:
    """Refuse to expose the Koji key's spending power to the network without auth, or OAuth without https."""
    oauth = bool(settings.oauth_issuer) or settings.oauth == "builtin"
    if args.transport == "stdio":
        if tokens:
            raise ConfigError("--auth-token applies to the HTTP transports (stdio is already private to its host)")
        if oauth:
            raise ConfigError("KOJI_MCP_OAUTH_ISSUER applies to the HTTP transports (stdio is already private to its host)")
        return
    authed = bool(tokens) or oauth
    if not is_loopback(args.host) and not authed and not args.insecure_no_auth:
        raise ConfigError(
            f"refusing to serve on {args.host} without auth: anyone who can reach it could spend your Koji "
            "credits. Add --auth-token (or KOJI_MCP_AUTH_TOKEN), or --insecure-no-auth if you really mean it"
        )
    if args.allowed_host and not authed and not args.insecure_no_auth:
        raise ConfigError(
            "refusing --allowed-host without auth: a proxy or tunnel makes this loopback port public. "
            "Add --auth-token (or KOJI_MCP_AUTH_TOKEN), or --insecure-no-auth if you really mean it"
        )
    if oauth:
        public = public_url(args, settings)
        if not public.startswith("https://") and not (is_loopback(args.host) and is_loopback(urlsplit(public).hostname or "")):
            raise ConfigError(
                f"refusing OAuth at {public}: bearer tokens must travel over https. Serve behind TLS and pass "
                "--public-url https://<your host> (the URL clients reach this server at)"
            )


def public_url(args: argparse.Namespace, settings: Settings) -> str:
    """--public-url / KOJI_MCP_PUBLIC_URL, else the bound address (no trailing slash)."""
    shown = f"[{args.host}]" if ":" in args.host else args.host
    return (settings.public_url or f"http://{shown}:{args.port}").rstrip("/")


def check_stateless(settings: Settings, args: argparse.Namespace) -> None:
    """--stateless is streamable HTTP only, and needs sealing keys every replica shares (never made per process)."""
    if not settings.stateless:
        return
    if args.transport != "streamable-http":
        raise ConfigError(f"--stateless (KOJI_MCP_STATELESS) applies to --transport streamable-http only; "
                          f"{args.transport} keeps per-connection state")
    if not settings.request_state_keys:
        raise ConfigError("--stateless needs KOJI_MCP_REQUEST_STATE_KEYS, the request-state sealing key every replica "
                          f"shares (the same value everywhere; a key made per process would not open on another "
                          f"replica): {GENERATE_STATE_KEY}")


def check_oauth(settings: Settings, args: argparse.Namespace, tokens: list) -> None:
    """The built-in authorization server needs HTTP, access codes to check, and an issuer URL clients trust."""
    if settings.oauth != "builtin":
        return
    if settings.oauth_issuer:
        raise ConfigError("choose one OAuth mode: --oauth (built-in) or --oauth-issuer (your identity provider), "
                          "not both")
    if args.transport == "stdio":
        raise ConfigError("--oauth applies to the HTTP transports: add --transport streamable-http")
    if not tokens:
        raise ConfigError(
            "--oauth needs client tokens: set KOJI_MCP_AUTH_TOKEN=name=token (or --auth-token name=token); "
            "people type their token as the access code on the consent page"
        )


async def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from koji_mcp.server.app import build_server, run_transport
    from koji_mcp.interviews.jobs import run_jobs
    from koji_mcp.interviews.services import open_services
    from koji_mcp.server.jwt_auth import IssuerError

    async with open_services(settings) as services:
        path = "/sse" if args.transport == "sse" else "/mcp"
        server = build_server(settings, services, tokens=args.tokens, public_url=public_url(args, settings),
                              mcp_path=path)
        if server.jwt_verifier is not None:
            try:
                await server.jwt_verifier.warm_up()
            except IssuerError as exc:
                raise ConfigError(f"OAuth issuer: {exc}") from None
            logger.info("OAuth: accepting access tokens from %s for the resource %s", settings.oauth_issuer,
                        server.jwt_verifier.resource_url)
        async with run_jobs(services):  # batch jobs run (and unfinished ones resume) while serving
            await run_transport(
                server,
                args.transport,
                host=args.host,
                port=args.port,
                allowed_hosts=args.allowed_host,
                allowed_origins=args.allowed_origin,
                listener=getattr(args, "listener", None),
                stateless=settings.stateless,
            )
