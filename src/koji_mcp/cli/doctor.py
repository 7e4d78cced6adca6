"""`koji-mcp doctor`: check the setup step by step, one line per check, each saying what to fix.

Why: when a host shows "server failed" the cause is nearly always one of five things: no key or a
mangled one, a wrong base URL, a key Koji rejects, a key without a permission the tools need, or a
state directory that cannot be written. Each is checked with short timeouts, through the server's
own KojiClient and Ledger, so the answer comes in seconds and no credit is spent. The key is never
printed (at most its first 12 characters). This module avoids the MCP SDK so it stays fast.
It ends with "N problems, M warnings" and exits 1 when a problem means a tool cannot work.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import re
import socket
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import httpx

from koji_mcp.config import EXIT_USAGE, KEY_PREFIX, MEMORY_STATE_DIR, ConfigError, Settings, is_loopback
from koji_mcp.interviews.services import SANDBOX_LEDGER_URL
from koji_mcp.interviews.ledger import Ledger, LedgerRowsLost, StorageError, UnsafeStateDir
from koji_mcp.koji.client import PROBE_INTERVIEW_ID, KojiClient
from koji_mcp.koji.errors import (
    COMPLETE,
    MESSAGE,
    PERMISSIONS,
    READ,
    START,
    Endpoint,
    Forbidden,
    KojiError,
    KojiRateLimited,
    KojiTimeout,
    KojiUnavailable,
    NotKoji,
    Redirected,
    Unauthorized,
)
from koji_mcp.logs import mask, mask_userinfo
from koji_mcp.text import plural
from koji_mcp.server.tools import ALL_TOOLS, UnknownToolName, select_specs

TIMEOUT = 5.0
PROBE_PATH = f"/api/v1/interviews/{PROBE_INTERVIEW_ID}"
KEY_SHAPE = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{32}}")
KEYS_PAGE = "Dashboard > Profile > API Keys"

Status = Literal["ok", "warn", "fail", "refuse"]  # refuse: unsafe to run at all (exit 2, like serve and batch)
MARKS = {"ok": "✓", "warn": "!", "fail": "✗", "refuse": "✗"}
ASCII_MARKS = {"ok": "OK", "warn": "!", "fail": "X", "refuse": "X"}


@dataclass(frozen=True)
class Check:
    status: Status
    text: str


def check_key(key: str | None) -> Check:
    if key is None:
        return Check("fail", f"KOJI_API_KEY is not set: export your Koji API key ({KEY_PREFIX}…, {KEYS_PAGE}), "
                             "or try everything without an account with `koji-mcp doctor --sandbox`")
    shown = mask(key)
    if KEY_SHAPE.fullmatch(key):
        return Check("ok", f"KOJI_API_KEY is set and shaped like a Koji key ({shown})")
    if not key.startswith(KEY_PREFIX):
        why = f"does not start with {KEY_PREFIX}"
    else:
        why = f"has {len(key) - len(KEY_PREFIX)} characters after {KEY_PREFIX}, not 32"
    return Check("warn", f"KOJI_API_KEY ({shown}) {why}: Koji keys are {KEY_PREFIX} + 32 characters; check for "
                         "quotes, spaces or a truncated copy (the request below tells whether Koji accepts it)")


def check_reachable(base_url: str) -> Check:
    """DNS, then a TCP connect, so each failure gets its own plain explanation."""
    url = httpx.URL(base_url)
    host, port = url.host, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return Check("fail", f"KOJI_BASE_URL {base_url} has no host name: set it to Koji's origin, https://koji.so")
    proxy = _proxy_for(url)
    if proxy:
        return Check("ok", f"base URL {base_url} is reached through the proxy {proxy} (the request below tests it)")
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return Check("fail", f"cannot resolve {host} (DNS): check KOJI_BASE_URL for a typo, and your network")
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT):
            pass
    except ConnectionRefusedError:
        return Check("fail", f"nothing is listening at {host}:{port} (connection refused): check KOJI_BASE_URL "
                             "(Koji is https://koji.so; a local sandbox prints its URL when it starts)")
    except TimeoutError:
        return Check("fail", f"no answer from {host}:{port} within {TIMEOUT:g} s: a firewall or proxy may block it")
    except OSError as exc:
        return Check("fail", f"cannot connect to {host}:{port}: {exc.strerror or exc}")
    if url.scheme == "http" and not is_loopback(host):
        return Check("warn", f"base URL {base_url} is reachable but plain http: the API key travels unencrypted; "
                             "use https://")
    return Check("ok", f"base URL {base_url} is reachable")


def check_koji(settings: Settings, base_url: str, key: str) -> list[Check]:
    """Does Koji accept the key, and does the key have every permission the enabled tools need?

    Asked through KojiClient (the server's own rules: no redirects, capped bodies, typed errors)
    with requests Koji must refuse, so no credit is spent: see `KojiClient.probe`.
    """
    quick = settings.model_copy(update={"timeout": TIMEOUT, "connect_timeout": TIMEOUT})
    return anyio.run(_check_koji, quick, base_url, key)


async def _check_koji(settings: Settings, base_url: str, key: str) -> list[Check]:
    client = KojiClient(settings, base_url=base_url, api_key=key)
    try:
        lookup = await _probe(client, READ)
        accepted = _key_check(lookup, base_url)
        if accepted.status == "fail" or isinstance(lookup, KojiRateLimited):
            return [accepted]
        found = {READ.permission: lookup}
        for endpoint in (START, MESSAGE, COMPLETE):
            found[endpoint.permission] = await _probe(client, endpoint)
        return [accepted, *_permission_checks(found, settings)]
    finally:
        await client.aclose()


async def _probe(client: KojiClient, endpoint: Endpoint) -> KojiError | None:
    try:
        await client.probe(endpoint)
    except KojiError as exc:
        return exc
    return None


def _key_check(outcome: KojiError | None, base_url: str) -> Check:
    """What the harmless lookup of a made-up interview says about the key and the base URL."""
    url = base_url + PROBE_PATH
    if outcome is None:
        return Check("ok", "Koji accepted the key (a lookup of a made-up interview answered 'not found', as expected)")
    if isinstance(outcome, Forbidden):
        return Check("ok", "Koji accepted the key (a lookup of a made-up interview answered 403: see the "
                           "permissions below)")
    if isinstance(outcome, Unauthorized):
        return Check("fail", f"Koji rejected the key (401): it is invalid or revoked; check KOJI_API_KEY, or create "
                             f"a new key in {KEYS_PAGE}")
    if isinstance(outcome, Redirected):
        return Check("fail", f"{base_url} redirects ({outcome.status}) to {_clean(outcome.location)}: set "
                             "KOJI_BASE_URL to the final origin (koji-mcp never follows redirects with your key)")
    if isinstance(outcome, NotKoji):
        return Check("fail", f"{url} answered {outcome.status} without Koji's JSON error body: KOJI_BASE_URL is "
                             "probably not Koji's API (it should be https://koji.so)")
    if isinstance(outcome, KojiRateLimited):
        return Check("warn", f"Koji is rate limiting this key (429), so it could not be checked now; try again in "
                             f"{_wait(outcome.retry_after)}")
    if isinstance(outcome, KojiTimeout):
        return Check("fail", f"no answer from {base_url} within {TIMEOUT:g} s: Koji or the network is slow; try again")
    if isinstance(outcome, KojiUnavailable) and outcome.status:
        return Check("fail", f"Koji answered {outcome.status}: trouble on Koji's side, not in your setup; "
                             "try again later")
    return Check("fail", f"request to {url} failed: {_clean(outcome.message)}")


def _permission_checks(found: dict[str, KojiError | None], settings: Settings) -> list[Check]:
    """One line for the permissions the key has, one per permission it lacks (naming the tools that fail)."""
    try:
        enabled = {spec.name for spec in select_specs(read_only=settings.read_only, names=settings.tools)}
    except UnknownToolName as exc:
        return [Check("fail", f"KOJI_MCP_TOOLS: {exc}")]
    granted = [p for p in PERMISSIONS if found[p] is None]
    checks = []
    if granted:
        every = len(granted) == len(PERMISSIONS)
        checks.append(Check("ok", ("the key has every permission the tools need: " if every else
                                   "the key has ") + ", ".join(granted)))
    for permission in PERMISSIONS:
        outcome = found[permission]
        if outcome is None:
            continue
        tools = [spec.name for spec in ALL_TOOLS if spec.permission == permission]
        needed = [name for name in tools if name in enabled]
        if not isinstance(outcome, Forbidden):
            why = ("Koji is rate limiting this key (429)" if isinstance(outcome, KojiRateLimited)
                   else _clean(outcome.message))
            checks.append(Check("warn", f"could not check {permission} ({why}); run `koji-mcp doctor` again later"))
        elif needed:
            checks.append(Check("fail", f"the key lacks the {permission} permission: {_and(needed)} will fail "
                                        f"(403); create a key with it in {KEYS_PAGE} (or switch "
                                        f"{'those tools' if len(needed) > 1 else 'that tool'} off with --read-only "
                                        "or --tools)"))
        else:
            checks.append(Check("warn", f"the key lacks the {permission} permission; {_and(tools)} "
                                        f"{'are' if len(tools) > 1 else 'is'} switched off here, so nothing fails"))
    return checks


def check_state_dir(state_dir: str, base_url: str) -> Check:
    """The ledger's directory: created 0700 if missing, writable, and the ledger opens."""
    if state_dir == MEMORY_STATE_DIR:
        return Check("warn", "state dir is :memory:: the ledger is forgotten on restart (list_interviews and batch "
                             "resume see nothing); set KOJI_MCP_STATE_DIR to a directory to keep it")
    path = Path(state_dir).expanduser()
    created = not path.exists()
    fix = "set KOJI_MCP_STATE_DIR (or --state-dir) to a writable directory"
    if path.exists() and not path.is_dir():
        return Check("fail", f"state dir {path} is not a directory: {fix}")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return Check("fail", f"cannot {'create' if created else 'write to'} state dir {path}: "
                             f"{exc.strerror or exc}: {fix}")
    try:
        with closing(Ledger.open(str(path), base_url)) as ledger:
            ledger.check_intact()
            here, total = ledger.count()
    except (UnsafeStateDir, LedgerRowsLost) as exc:
        return Check("refuse", str(exc))
    except (OSError, StorageError, RuntimeError) as exc:
        return Check("fail", f"the ledger in {path} does not open: {exc}: move it aside or {fix}")
    note = " (created, mode 0700)" if created else ""
    elsewhere = f" ({total} in all)" if total != here else ""
    line = f"state dir {path}{note} is writable; the ledger holds {here} interview(s) started on {base_url}{elsewhere}"
    if os.name != "nt" and path.stat().st_mode & 0o077:
        return Check("warn", f"{line}, but others can read it (mode {path.stat().st_mode & 0o777:o}): "
                             f"chmod 700 {path} (the ledger holds session tokens)")
    return Check("ok", line)


def check_database(url: str, base_url: str) -> Check:
    """The PostgreSQL ledger: reachable, migrated (or migratable), and what it holds."""
    try:
        ledger = Ledger.open(MEMORY_STATE_DIR, base_url, database_url=url)
    except (ConfigError, RuntimeError) as exc:  # psycopg missing; a newer schema
        return Check("fail", f"the ledger database: {exc}")
    with closing(ledger):
        problem = ledger.readiness()
        if problem is not None:
            return Check("fail", f"{problem}: check KOJI_MCP_DATABASE_URL, that the server is up, and that this "
                                 "machine may connect to it")
        try:
            here, total = ledger.count()
        except StorageError as exc:
            return Check("fail", exc.message)
    elsewhere = f" ({total} in all)" if total != here else ""
    return Check("ok", f"the ledger database {ledger.path} is reachable and migrated; it holds {here} interview(s) "
                       f"started on {base_url}{elsewhere}")


def run_checks(settings: Settings) -> Iterator[Check]:
    """The checks in order; later ones are skipped when an earlier one makes them meaningless."""
    with ExitStack() as stack:
        if settings.sandbox:
            from koji_mcp.sandbox import (  # lazy: only --sandbox needs uvicorn
                DEMO_KEY,
                SandboxServer,
            )

            base_url, key = stack.enter_context(SandboxServer()).base_url, DEMO_KEY
            yield Check("ok", f"using an in-process sandbox at {base_url} with its demo key (--sandbox)")
        else:
            base_url = settings.base_url
            key = settings.api_key.get_secret_value() if settings.api_key else None
            yield check_key(key)
        reachable = check_reachable(base_url)
        yield reachable
        if key is None:
            yield Check("warn", "the key was not tested with Koji: KOJI_API_KEY is not set")
        elif reachable.status == "fail":
            yield Check("warn", "the key was not tested with Koji: the base URL is unreachable")
        else:
            yield from check_koji(settings, base_url, key)
        # the ledger this setup really uses: --sandbox keeps its own under STATE_DIR/sandbox/
        ledger_url = SANDBOX_LEDGER_URL if settings.sandbox else base_url
        if settings.ledger_database_url:
            yield check_database(settings.ledger_database_url, ledger_url)
        else:
            yield check_state_dir(settings.ledger_dir, ledger_url)


def run_doctor_command(args: argparse.Namespace) -> int:
    utf8 = _utf8(sys.stdout)
    marks = MARKS if utf8 else ASCII_MARKS
    counts = {"ok": 0, "warn": 0, "fail": 0, "refuse": 0}
    try:
        settings = Settings.load(base_url=args.base_url, state_dir=args.state_dir, database_url=args.database_url,
                                 sandbox=True if args.sandbox else None)
        checks: Iterator[Check] = run_checks(settings)
        secret = settings.api_key.get_secret_value() if settings.api_key else ""
    except ConfigError as exc:
        checks, secret = iter([Check("fail", f"settings: {exc}")]), ""
    for check in checks:
        counts[check.status] += 1
        line = f"{marks[check.status]} {check.text}"
        line = mask_userinfo(line)  # a password in the base URL (https://user:pw@host)
        if len(secret) >= 8:  # belt and braces: whatever the shape, the key itself never gets out
            line = line.replace(secret, mask(secret))
        print(line if utf8 else line.replace("…", "..."), flush=True)
    problems, warnings = counts["fail"] + counts["refuse"], counts["warn"]
    summary = f"{plural(problems, 'problem')}, {plural(warnings, 'warning')}"
    if problems:
        summary += f": fix the lines marked {marks['fail']} above, then run `koji-mcp doctor` again."
    elif warnings:
        summary += f": koji-mcp can run; the lines marked {marks['warn']} say what to improve."
    else:
        summary += ": all checks passed."
    print(summary)
    return EXIT_USAGE if counts["refuse"] else 1 if problems else 0


def _clean(text: str, limit: int = 200) -> str:
    """Third-party text (headers, error messages) made safe for one terminal line."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wait(seconds: float | None) -> str:
    return f"{max(1, math.ceil(seconds))} s" if seconds is not None else "a minute"


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _proxy_for(url: httpx.URL) -> str | None:
    """The proxy httpx would use for `url` (from *_PROXY env), so a direct TCP test would mislead."""
    proxy = urllib.request.getproxies().get(url.scheme) or urllib.request.getproxies().get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return str(httpx.URL(proxy).copy_with(username=None, password=None))


def _utf8(stream: object) -> bool:
    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        return False
