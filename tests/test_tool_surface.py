"""tools/list: the checked-in catalog, annotations on every tool, and the size budget.

The tool schemas live in one place, src/koji_mcp/server/tools/catalog.json, generated from the code.
After an intended change regenerate it with `python -m koji_mcp.server.tools.catalog`
(or `UPDATE_CATALOG=1 make test`).
"""

from __future__ import annotations

import json
import os

import pytest
from mcp import Client

pytestmark = pytest.mark.anyio
HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")


async def _tools(client: Client) -> list[dict]:
    listed = await client.list_tools()
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]


async def test_every_tool_is_annotated_titled_inline_and_within_budget(legacy_client: Client) -> None:
    tools = await _tools(legacy_client)
    listing = json.dumps({"tools": tools})
    assert len(listing) <= 12_000, f"tools/list is {len(listing)} characters"
    for tool in tools:
        assert tool.get("title"), tool["name"]
        assert tool["annotations"].get("title") == tool["title"]
        for hint in HINTS:
            assert isinstance(tool["annotations"].get(hint), bool), (tool["name"], hint)
        assert len(tool["description"]) <= 600, (tool["name"], len(tool["description"]))
        schema_text = json.dumps(tool["inputSchema"]) + json.dumps(tool.get("outputSchema", {}))
        assert "$ref" not in schema_text and "$defs" not in schema_text, tool["name"]
        assert tool["inputSchema"].get("additionalProperties") is False, tool["name"]
        for name, prop in tool["inputSchema"]["properties"].items():
            assert prop.get("description"), f"{tool['name']}.{name} has no description"


async def test_start_interview_annotations(legacy_client: Client) -> None:
    [start] = [t for t in await _tools(legacy_client) if t["name"] == "start_interview"]
    assert start["annotations"] == {
        "title": "Start interview", "readOnlyHint": False, "destructiveHint": False,
        "idempotentHint": False, "openWorldHint": True,
    }
    respondent = start["inputSchema"]["properties"]["respondent"]
    assert set(respondent["properties"]) == {"external_id", "display_name", "metadata"}
    for name, prop in respondent["properties"].items():
        assert prop.get("description"), name


async def test_catalog_matches_the_code_and_is_what_tools_list_answers(legacy_client: Client) -> None:
    """The one copy of the tool schemas: catalog.json must be exactly what the code builds.

    Regenerate it with `python -m koji_mcp.server.tools.catalog` (or `UPDATE_CATALOG=1 make test`).
    """
    from koji_mcp.server.tools.catalog import generate_catalog, load_catalog, write_catalog

    if os.environ.get("UPDATE_CATALOG"):
        write_catalog()
    generated = {entry["name"]: entry for entry in generate_catalog()}
    assert load_catalog() == generated, "catalog.json is stale: run `python -m koji_mcp.server.tools.catalog`"
    assert {t["name"]: t for t in await _tools(legacy_client)} == generated


async def test_tools_are_built_on_first_call_only(settings) -> None:
    from koji_mcp.server.app import build_server

    server = build_server(settings)
    async with Client(server, mode="legacy") as c:
        await c.list_tools()
        assert server._built == {}
        await c.call_tool("list_interviews", {})
    assert list(server._built) == ["list_interviews"]


def _untyped(node: object, path: str) -> list[str]:
    """Places where a schema says nothing about a value (`{}`), or an array has no item type."""
    found: list[str] = []
    if isinstance(node, dict):
        if node == {}:
            found.append(path)
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            found.append(path + " (array without items)")
        for key, value in node.items():
            if key in ("properties", "$defs"):
                for name, child in value.items():
                    found += _untyped(child, f"{path}.{name}")
            elif key in ("items", "additionalProperties") or key in ("anyOf", "oneOf", "allOf"):
                children = value if isinstance(value, list) else [value]
                for i, child in enumerate(children):
                    found += _untyped(child, f"{path}.{key}[{i}]" if isinstance(value, list) else f"{path}[]")
    return found


def test_every_output_schema_types_its_items() -> None:
    """Strict clients (Inspector --strict) reject `{}` schemas such as an untyped `transcript.items`."""
    from koji_mcp.server.tools.catalog import load_catalog

    problems = [p for name, tool in load_catalog().items()
                for p in _untyped(tool.get("outputSchema", {"type": "object"}), name)]
    assert problems == []
    transcript = load_catalog()["get_interview"]["outputSchema"]["properties"]["transcript"]
    assert transcript["items"]["type"] == "object"
    assert {"role", "content", "message_id", "created_at"} <= set(transcript["items"]["properties"])


def test_transcript_messages_stay_readable_when_koji_sends_odd_values() -> None:
    from koji_mcp.server.tools.read import TranscriptMessage

    odd = TranscriptMessage.model_validate({"role": "respondent", "content": {"text": "hi"}, "reaction": 1})
    assert odd.model_dump(exclude_none=True) == {"role": "respondent", "content": '{"text": "hi"}', "reaction": 1}
