"""The one registry of tools: read tools and write tools, each with its annotation preset.

`select_tools` applies `--read-only` and `--tools`, so a filtered tool is never registered (and
therefore can't be called), rather than registered and refused.
"""

from __future__ import annotations

from collections.abc import Iterable

from mcp.server.mcpserver.tools import Tool

from koji_mcp.tools.batch import start_interviews
from koji_mcp.tools.lifecycle import complete_interview, send_interview_message
from koji_mcp.tools.read import get_interview, list_interviews
from koji_mcp.tools.schema import ToolSpec, build_tool
from koji_mcp.tools.start import start_interview

READ_TOOLS: list[ToolSpec] = [
    ToolSpec(get_interview, title="Get interview results", read_only=True, idempotent=True),
    ToolSpec(list_interviews, title="List interviews", read_only=True, idempotent=True, open_world=False),
]

WRITE_TOOLS: list[ToolSpec] = [
    ToolSpec(start_interview, title="Start interview", read_only=False, idempotent=False),
    ToolSpec(start_interviews, title="Start interviews (batch)", read_only=False, idempotent=False),
    ToolSpec(send_interview_message, title="Send interview message", read_only=False, idempotent=False),
    ToolSpec(complete_interview, title="Complete interview", read_only=False, idempotent=True),
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


def select_tools(*, read_only: bool = False, names: Iterable[str] | None = None) -> list[Tool]:
    check_tool_names(names)
    specs = READ_TOOLS if read_only else ALL_TOOLS
    if names is not None:
        wanted = set(names)
        specs = [spec for spec in specs if spec.name in wanted]
    return [build_tool(spec) for spec in specs]
