"""`koji-mcp doctor`: check the setup step by step, one line per check, each saying what to fix.

Why: when a host shows "server failed" the cause is nearly always one of four things: no key or a
mangled one, a wrong base URL, a key Koji rejects, or a state directory that cannot be written.
Each is checked here directly, with short timeouts, so the answer comes in seconds. The key is
never printed (at most its first 12 characters). This module avoids the MCP SDK so it stays fast.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import re
import socket
import sqlite3
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from koji_mcp import USER_AGENT
from koji_mcp.config import KEY_PREFIX, MEMORY_STATE_DIR, ConfigError, Settings, is_loopback
from koji_mcp.logs import mask_userinfo
from koji_mcp.koji.ratelimit import RateLimitTracker

TIMEOUT = 5.0
PROBE_PATH = "/api/v1/interviews/00000000-0000-0000-0000-000000000000"
KEY_SHAPE = re.compile(rf"{KEY_PREFIX}[A-Za-z0-9_-]{{32}}")
KEYS_PAGE = "Dashboard > Profile > API Keys"

Status = Literal["ok", "warn", "fail"]
MARKS = {"ok": "✓", "warn": "!", "fail": "✗"}
ASCII_MARKS = {"ok": "OK", "warn": "!", "fail": "X"}


@dataclass(frozen=True)
class Check:
    status: Status
    text: str


def mask(key: str) -> str:
    """At most the first 12 characters, and never more than a third of the key."""
    return key[: min(12, len(key) // 3)] + "…"


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


def check_koji(base_url: str, key: str) -> Check:
    """One harmless GET of an interview that cannot exist: the status says whether the key works."""
    url = base_url + PROBE_PATH
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json", "User-Agent": USER_AGENT}
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        return Check("fail", f"no answer from {base_url} within {TIMEOUT:g} s: Koji or the network is slow; try again")
    except httpx.HTTPError as exc:
        return Check("fail", f"request to {base_url} failed: {_clean(str(exc)) or type(exc).__name__}")
    status = response.status_code
    if status == 401:
        return Check("fail", f"Koji rejected the key (401): it is invalid or revoked; check KOJI_API_KEY, or create "
                             f"a new key in {KEYS_PAGE}")
    if status == 403:
        return Check("warn", "the key is valid but lacks the interview:read permission (403): get_interview will "
                             f"fail; grant it (with interview:start, interview:chat, interview:complete) in {KEYS_PAGE}")
    if status == 200:
        return Check("ok", "Koji accepted the key (test lookup answered 200)")
    code = _koji_error(response)
    if status == 404 and code:
        return Check("ok", f"Koji accepted the key (a lookup of a made-up interview answered 404 {code}, "
                           "as expected)")
    if status in (404, 405):
        return Check("fail", f"{url} answered {status} without Koji's JSON error body: KOJI_BASE_URL is probably "
                             "not Koji's API (it should be https://koji.so)")
    if status == 429:
        wait = RateLimitTracker().retry_after(response.headers)
        when = f"{max(1, math.ceil(wait))} s" if wait is not None else "a minute"
        return Check("warn", "Koji is rate limiting this key (429), so it could not be checked now; "
                             f"try again in {when}")
    if 300 <= status < 400:
        target = _clean(response.headers.get("location", "?"))
        return Check("fail", f"{base_url} redirects ({status}) to {target}: set KOJI_BASE_URL to the final origin "
                             "(koji-mcp never follows redirects with your key)")
    if status >= 500:
        return Check("fail", f"Koji answered {status}: trouble on Koji's side, not in your setup; try again later")
    return Check("fail", f"unexpected answer {status} from {url}")


def check_state_dir(state_dir: str, base_url: str) -> Check:
    """The ledger's directory: created 0700 if missing, writable, and the ledger opens."""
    from koji_mcp.interviews.ledger import Ledger

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
            here, total = _count(ledger.path, base_url)
    except (OSError, sqlite3.Error, RuntimeError) as exc:
        return Check("fail", f"the ledger in {path} does not open: {exc}: move it aside or {fix}")
    note = " (created, mode 0700)" if created else ""
    elsewhere = f" ({total} in all)" if total != here else ""
    line = f"state dir {path}{note} is writable; the ledger holds {here} interview(s) started on {base_url}{elsewhere}"
    if os.name != "nt" and path.stat().st_mode & 0o077:
        return Check("warn", f"{line}, but others can read it (mode {path.stat().st_mode & 0o777:o}): "
                             f"chmod 700 {path} (the ledger holds session tokens)")
    return Check("ok", line)


def run_checks(args: argparse.Namespace) -> Iterator[Check]:
    """The checks in order; later ones are skipped when an earlier one makes them meaningless."""
    try:
        settings = Settings.load(base_url=args.base_url, state_dir=args.state_dir,
                                 sandbox=True if args.sandbox else None)
    except ConfigError as exc:
        yield Check("fail", f"settings: {exc}")
        return
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
            yield check_koji(base_url, key)
        yield check_state_dir(settings.state_dir, base_url)


def run_doctor_command(args: argparse.Namespace) -> int:
    utf8 = _utf8(sys.stdout)
    marks = MARKS if utf8 else ASCII_MARKS
    secret = os.environ.get("KOJI_API_KEY", "").strip()
    failed = 0
    for check in run_checks(args):
        failed += check.status == "fail"
        line = f"{marks[check.status]} {check.text}"
        line = mask_userinfo(line)  # a password in the base URL (https://user:pw@host)
        if len(secret) >= 8:  # belt and braces: whatever the shape, the key itself never gets out
            line = line.replace(secret, mask(secret))
        print(line if utf8 else line.replace("…", "..."), flush=True)
    print("All checks passed." if not failed else f"{failed} check(s) failed: fix the lines marked "
          f"{marks['fail']} above, then run `koji-mcp doctor` again.")
    return 1 if failed else 0


def _koji_error(response: httpx.Response) -> str | None:
    """The code of Koji's error envelope `{"error": code, "message": text}`, which tells Koji from any other 404."""
    try:
        body = response.json()
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str):
        return body["error"] if re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", body["error"]) else "error"
    return None


def _clean(text: str, limit: int = 200) -> str:
    """Third-party text (headers, error messages) made safe for one terminal line."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _count(ledger_path: str, base_url: str) -> tuple[int, int]:
    """(interviews on this base URL, all interviews), read on a separate read-only connection."""
    uri = Path(ledger_path).absolute().as_uri() + "?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=TIMEOUT)) as db:
        here = db.execute("SELECT COUNT(*) FROM interviews WHERE base_url = ?", (base_url,)).fetchone()[0]
        total = db.execute("SELECT COUNT(*) FROM interviews").fetchone()[0]
    return int(here), int(total)


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
