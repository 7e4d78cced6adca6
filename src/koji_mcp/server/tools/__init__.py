"""The one registry of tools: read tools and write tools, each with its annotation preset.

Tools are named here by import path, not imported: `tools/list` is answered from the checked-in
catalog (catalog.json, generated from the code and checked by the tests), and a tool's module is
imported and its schema built on its first call. Startup therefore pays for neither.
`--read-only` and `--tools` filter the registry, so a filtered tool is never listed or callable.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # doctor reads the registry without importing the MCP SDK
    from mcp.types import ToolAnnotations

from koji_mcp.server.app_view import VIEW_META
from koji_mcp.server.scopes import READ_SCOPE, WRITE_SCOPE


@dataclass(frozen=True)
class ToolSpec:
    """Where a tool's function lives, plus what hosts show about it (all four hints, always)."""

    target: str  # "module:function"
    title: str
    read_only: bool
    idempotent: bool
    permission: str | None  # the Koji API-key permission the tool needs (None: it never calls Koji)
    destructive: bool = False
    open_world: bool = True
    meta: dict[str, Any] | None = None  # the tool's `_meta` in tools/list (start_interview: its MCP App view)

    @property
    def name(self) -> str:
        return self.target.rsplit(":", 1)[1]

    @property
    def scope(self) -> str:
        """The OAuth scope a caller needs: read tools need interviews:read, every other tool interviews:write."""
        return READ_SCOPE if self.read_only else WRITE_SCOPE

    @property
    def fn(self) -> Callable[..., Any]:
        module, attr = self.target.split(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def annotations(self) -> ToolAnnotations:
        from mcp.types import ToolAnnotations

        return ToolAnnotations(
            title=self.title,
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )


READ_TOOLS: list[ToolSpec] = [
    ToolSpec("koji_mcp.server.tools.read:get_interview", title="Get interview", read_only=True, idempotent=True,
             permission="interview:read"),
    ToolSpec("koji_mcp.server.tools.read:list_interviews", title="List interviews", read_only=True, idempotent=True,
             permission=None, open_world=False),
    ToolSpec("koji_mcp.server.tools.search:search", title="Search interviews", read_only=True, idempotent=True,
             permission=None, open_world=False),
    ToolSpec("koji_mcp.server.tools.search:fetch", title="Fetch interview", read_only=True, idempotent=True,
             permission="interview:read"),
    ToolSpec("koji_mcp.server.tools.batch:get_batch", title="Get batch", read_only=True, idempotent=True,
             permission=None, open_world=False),
]

WRITE_TOOLS: list[ToolSpec] = [
    ToolSpec("koji_mcp.server.tools.start:start_interview", title="Start interview", read_only=False, idempotent=False,
             permission="interview:start", meta=VIEW_META),
    ToolSpec("koji_mcp.server.tools.batch:start_interviews", title="Start interviews", read_only=False,
             idempotent=False, permission="interview:start"),
    ToolSpec("koji_mcp.server.tools.lifecycle:send_interview_message", title="Send interview message", read_only=False,
             idempotent=False, permission="interview:chat"),
    ToolSpec("koji_mcp.server.tools.lifecycle:complete_interview", title="Complete interview", read_only=False,
             idempotent=True, permission="interview:complete"),
    ToolSpec("koji_mcp.server.tools.batch:cancel_batch", title="Cancel batch", read_only=False, idempotent=True,
             permission=None, open_world=False),
]

ALL_TOOLS: list[ToolSpec] = [*WRITE_TOOLS, *READ_TOOLS]
TOOL_NAMES: tuple[str, ...] = tuple(spec.name for spec in ALL_TOOLS)


class UnknownToolName(ValueError):
    """`--tools` named a tool that does not exist."""


def check_tool_names(names: Iterable[str] | None) -> None:
    """Fail fast (before serving) on a name that is not a tool."""
    unknown = [name for name in dict.fromkeys(names or ()) if name not in TOOL_NAMES]
    if unknown:
        raise UnknownToolName(f"unknown tool name(s): {', '.join(unknown)}; valid names: {', '.join(TOOL_NAMES)}")


def select_specs(*, read_only: bool = False, names: Iterable[str] | None = None) -> list[ToolSpec]:
    check_tool_names(names)
    specs = READ_TOOLS if read_only else ALL_TOOLS
    if names is not None:
        wanted = set(names)
        specs = [spec for spec in specs if spec.name in wanted]
    return specs
