"""Logging to stderr only, with secrets redacted from every line.

In stdio mode stdout is the protocol, so nothing may log there. Keys and session tokens are
masked to their prefix (`pk_live_abcd…`) by the formatter, which sees the final text including
tracebacks, so a secret cannot slip out through an exception message either.
"""

from __future__ import annotations

import logging
import re
import sys

_SECRETS = [
    re.compile(r"\b((?:pk|sk|st)_(?:live|test)_)([A-Za-z0-9]{0,4})[A-Za-z0-9_\-]*"),
    re.compile(r"(?i)\b(bearer\s+)(\S{0,4})\S*"),
    re.compile(r"(?i)\b(x-session-token[\"']?\s*[:=]\s*[\"']?)(\S{0,4})[^\s\"',}]*"),
]
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@]+@")


def mask_userinfo(text: str) -> str:
    """A user name or password inside a URL (`https://user:pw@host`) becomes `https://…@host`."""
    return _USERINFO.sub(r"\1…@", text)


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}…", text)
    return mask_userinfo(text)


def mask(secret: str) -> str:
    """How a secret may be shown: at most its first 12 characters, never more than a third of it."""
    return secret[: min(12, len(secret) // 3)] + "…"


def mask_secrets(text: str, secrets: tuple[str, ...]) -> str:
    """Replace each known secret (whatever its shape) with its mask, then anything secret-shaped."""
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, mask(secret))
    return redact(text)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "INFO") -> None:
    """Route all logging to stderr through the redacting formatter (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_koji_mcp", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._koji_mcp = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs full URLs at INFO; ours are logged by KojiClient without secrets. The SDK's streamable HTTP
    # transport logs "Terminating session" at INFO for every request in stateless mode.
    for noisy in ("httpx", "httpcore", "uvicorn.access", "mcp.server.streamable_http"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
