"""Sandbox configuration and the built-in API keys.

The keys are fixed (not random) so that docs, demos and tests can name them. They all
have Koji's documented shape, ``pk_live_`` followed by 32 characters from ``[a-z0-9]``,
so a client that warns about odd-looking keys stays quiet in the sandbox.

Projects are identified by a plain string. Three project ids are built in:

* ``"demo"`` – published, uses the configured brief (unpublished if that brief has
  ``"published": false``);
* ``"draft"`` – the same brief, forced unpublished (start → 422 ``unprocessable``);
* ``"deleted"`` – a deleted project (start → 404 ``not_found``).

A :class:`KeySpec` in ``SandboxConfig.extra_keys`` may name any other project id; such a
project is created on the fly, published, with the configured brief.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALL_PERMISSIONS",
    "COMPLETE_ROUTES",
    "DELETED_PROJECT_KEY",
    "DEMO_KEY",
    "DRAFT_PROJECT_KEY",
    "MESSAGE_ROUTES",
    "NO_PERMISSION_KEY",
    "READ_ONLY_KEY",
    "REVOKED_KEY",
    "START_ONLY_KEY",
    "KeySpec",
    "SandboxConfig",
    "builtin_keys",
]

PERM_START = "interview:start"
PERM_CHAT = "interview:chat"
PERM_COMPLETE = "interview:complete"
PERM_READ = "interview:read"
ALL_PERMISSIONS: frozenset[str] = frozenset({PERM_START, PERM_CHAT, PERM_COMPLETE, PERM_READ})

MESSAGE_ROUTES: frozenset[str] = frozenset({"message", "messages"})
COMPLETE_ROUTES: frozenset[str] = frozenset({"current", "legacy"})

DEMO_PROJECT = "demo"
DRAFT_PROJECT = "draft"
DELETED_PROJECT = "deleted"


def _key(label: str) -> str:
    """Pad a readable label to Koji's key shape: ``pk_live_`` + 32 chars of [a-z0-9]."""
    return "pk_live_" + (label + "0" * 32)[:32]


DEMO_KEY = _key("sandboxdemo")
READ_ONLY_KEY = _key("sandboxreadonly")
START_ONLY_KEY = _key("sandboxstartonly")
NO_PERMISSION_KEY = _key("sandboxnopermission")
DRAFT_PROJECT_KEY = _key("sandboxdraftproject")
DELETED_PROJECT_KEY = _key("sandboxdeletedproject")
REVOKED_KEY = _key("sandboxrevoked")


@dataclass(frozen=True)
class KeySpec:
    """What one API key may do: its permissions, its project, whether it was revoked."""

    permissions: frozenset[str] = ALL_PERMISSIONS
    project: str = DEMO_PROJECT
    revoked: bool = False
    description: str = ""  # a note for the startup banner

    def __post_init__(self) -> None:
        perms = frozenset(self.permissions)
        unknown = perms - ALL_PERMISSIONS
        if unknown:
            raise ValueError(f"Unknown permission(s): {', '.join(sorted(unknown))}")
        object.__setattr__(self, "permissions", perms)


def builtin_keys() -> dict[str, KeySpec]:
    """The built-in keys, in the order the banner lists them."""
    return {
        DEMO_KEY: KeySpec(ALL_PERMISSIONS, DEMO_PROJECT),
        READ_ONLY_KEY: KeySpec(frozenset({PERM_READ}), DEMO_PROJECT),
        START_ONLY_KEY: KeySpec(frozenset({PERM_START}), DEMO_PROJECT),
        NO_PERMISSION_KEY: KeySpec(frozenset(), DEMO_PROJECT),
        DRAFT_PROJECT_KEY: KeySpec(ALL_PERMISSIONS, DRAFT_PROJECT, description="brief unpublished: start -> 422"),
        DELETED_PROJECT_KEY: KeySpec(ALL_PERMISSIONS, DELETED_PROJECT, description="project deleted: start -> 404"),
        REVOKED_KEY: KeySpec(ALL_PERMISSIONS, DEMO_PROJECT, revoked=True, description="revoked: every call -> 401"),
    }


@dataclass
class SandboxConfig:
    """Knobs of the emulator; the defaults match Koji's current documentation."""

    rate_limit: int = 60
    window_seconds: float = 60.0
    brief: dict[str, Any] | None = None
    analysis_delay: float = 1.0
    message_routes: frozenset[str] = MESSAGE_ROUTES
    complete_routes: frozenset[str] = COMPLETE_ROUTES
    retry_after_header: bool = False
    extra_keys: dict[str, KeySpec] = field(default_factory=dict)
    # A JSON file that keeps the interviews across processes (``serve --sandbox`` run once per call,
    # ``batch --sandbox`` rerun). None (the default): everything lives in memory and dies with the process.
    state_file: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.rate_limit, bool) or not isinstance(self.rate_limit, int) or self.rate_limit < 1:
            raise ValueError("rate_limit must be a positive integer")
        if not self.window_seconds > 0:
            raise ValueError("window_seconds must be positive")
        if self.analysis_delay < 0:
            raise ValueError("analysis_delay must not be negative")
        self.message_routes = _routes("message_routes", self.message_routes, MESSAGE_ROUTES)
        self.complete_routes = _routes("complete_routes", self.complete_routes, COMPLETE_ROUTES)
        for key, spec in self.extra_keys.items():
            if not isinstance(key, str) or not key:
                raise ValueError("extra_keys must map non-empty key strings to KeySpec")
            if not isinstance(spec, KeySpec):
                raise ValueError(f"extra_keys[{key!r}] must be a KeySpec")

    def keys(self) -> dict[str, KeySpec]:
        """Built-in keys plus ``extra_keys`` (which win on a clash)."""
        return {**builtin_keys(), **self.extra_keys}


def _routes(name: str, value: Any, allowed: frozenset[str]) -> frozenset[str]:
    routes = frozenset([value] if isinstance(value, str) else value)
    unknown = routes - allowed
    if unknown:
        raise ValueError(
            f"{name}: unknown route(s) {', '.join(sorted(unknown))}; choose from {', '.join(sorted(allowed))}"
        )
    return routes
