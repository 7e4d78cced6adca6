"""--read-only and --tools: filtered tools are not listed and cannot be called."""

from __future__ import annotations

import pytest
from mcp import Client

from koji_mcp.config import Settings
from koji_mcp.server.app import build_server
from koji_mcp.server.tools import UnknownToolName, select_specs
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio


async def names_and_refusal(settings, blocked: str) -> tuple[list[str], str]:
    async with Client(build_server(settings), mode="legacy") as c:
        listed = [t.name for t in (await c.list_tools()).tools]
        refused = await c.call_tool(blocked, {"respondent": {"external_id": "x"}})
    assert refused.is_error
    return listed, refused.content[0].text


async def test_read_only_registers_only_read_tools(sandbox) -> None:
    listed, text = await names_and_refusal(make_settings(sandbox.base_url, read_only=True), "start_interview")
    assert listed == ["get_interview", "list_interviews", "search", "fetch", "get_batch"]
    assert text == "Unknown tool: start_interview"
    assert sandbox.requests() == []


async def test_allow_list(sandbox) -> None:
    settings = make_settings(sandbox.base_url, tools=("start_interview", "get_interview"))
    listed, text = await names_and_refusal(settings, "start_interviews")
    assert listed == ["start_interview", "get_interview"]
    assert text == "Unknown tool: start_interviews"


async def test_read_only_and_allow_list_combine(sandbox) -> None:
    settings = make_settings(sandbox.base_url, read_only=True, tools=("start_interview", "list_interviews"))
    listed, _ = await names_and_refusal(settings, "start_interview")
    assert listed == ["list_interviews"]


def test_env_switches() -> None:
    s = Settings.load({"KOJI_MCP_READ_ONLY": "1", "KOJI_MCP_TOOLS": "get_interview, list_interviews"})
    assert [t.name for t in select_specs(read_only=s.read_only, names=s.tools)] == ["get_interview", "list_interviews"]
    with pytest.raises(UnknownToolName, match="unknown tool name\\(s\\): start; valid names: start_interview, "):
        select_specs(names=["start"])
