"""The interview as an MCP App: the ui:// resource, start_interview's _meta, negotiation on both
protocol versions, graceful degradation, and the structured question data (replies.py + sandbox)."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from mcp import Client
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from koji_mcp.koji.replies import parse_json_reply, parse_question, parse_sse_reply
from koji_mcp.server.app import build_server
from koji_mcp.server.app_view import EXTENSION_ID as OUR_EXTENSION_ID
from koji_mcp.server.app_view import VIEW_URI, view_html

pytestmark = pytest.mark.anyio
APPS = [advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]


def test_extension_id_is_the_sdks() -> None:
    assert OUR_EXTENSION_ID == EXTENSION_ID


async def test_view_resource_is_served_as_an_mcp_app(client: Client) -> None:
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    view = listed[VIEW_URI]
    assert view.mime_type == APP_MIME_TYPE == "text/html;profile=mcp-app"
    shown = view.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert shown["_meta"] == {"ui": {"csp": {}, "prefersBorder": True}}  # empty CSP, no permissions
    read = await client.read_resource(VIEW_URI)
    [content] = read.contents
    assert content.mime_type == APP_MIME_TYPE
    assert content.text == view_html()


def test_view_is_self_contained() -> None:
    html = view_html()
    assert not re.search(r"https?://", html), "the view must reference no remote asset"
    assert not re.search(r"<(script|link|img|iframe|object|embed)\b[^>]*\b(src|href)\s*=", html, re.I)
    assert not re.search(r"@import|url\(", html)
    assert html.count("<script>") == 1  # one inline script, nothing loaded
    assert "innerHTML" not in html and "insertAdjacentHTML" not in html and "document.write" not in html
    for method in ("ui/initialize", "ui/notifications/initialized", "ui/notifications/tool-result", "tools/call",
                   "send_interview_message", "complete_interview", "get_interview"):
        assert method in html


async def test_start_interview_opens_the_view_in_the_listing(client: Client) -> None:
    tools = {t.name: t.model_dump(mode="json", by_alias=True, exclude_none=True)
             for t in (await client.list_tools()).tools}
    assert tools["start_interview"]["_meta"] == {"ui": {"resourceUri": VIEW_URI}, "openai/outputTemplate": VIEW_URI}
    assert all("_meta" not in t for name, t in tools.items() if name != "start_interview")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_declaring_apps_gets_the_extension_back_on_both_versions(settings, mode: str) -> None:
    async with Client(build_server(settings), mode=mode, extensions=APPS) as c:
        assert c.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28")
        assert c.server_capabilities.extensions == {EXTENSION_ID: {}}


async def test_a_client_without_apps_gets_no_extension_on_2025_11_25(legacy_client: Client) -> None:
    assert legacy_client.protocol_version == "2025-11-25"
    assert not legacy_client.server_capabilities.extensions


async def test_initialize_on_the_wire_over_http_declares_the_extension(settings, sandbox) -> None:
    """The raw 2025-11-25 initialize result over streamable HTTP, as a host reads it."""
    app = build_server(settings).streamable_http_app()
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "clientInfo": {"name": "host", "version": "1"},
        "capabilities": {"extensions": {EXTENSION_ID: {"mimeTypes": [APP_MIME_TYPE]}}}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
            response = await http.post("/mcp", json=body, headers=headers)
            plain = await http.post("/mcp", json={**body, "params": {**body["params"], "capabilities": {}}},
                                    headers=headers)
    def result(r: httpx.Response) -> dict:
        text = r.text
        data = text if r.headers["content-type"].startswith("application/json") else \
            next(line[5:] for line in text.splitlines() if line.startswith("data:"))
        return json.loads(data)["result"]
    assert response.status_code == 200, response.text
    assert result(response)["protocolVersion"] == "2025-11-25"
    assert result(response)["capabilities"]["extensions"] == {EXTENSION_ID: {}}
    assert "extensions" not in result(plain)["capabilities"]


async def _start(c: Client) -> dict:
    result = await c.call_tool("start_interview", {"respondent": {"external_id": "app-1", "display_name": "Ana"}})
    assert not result.is_error, result.content[0].text
    return {"text": result.content[0].text, "structured": result.structured_content}


async def test_clients_with_and_without_apps_get_the_same_start_result(settings, sandbox) -> None:
    results = []
    for extensions in (APPS, None):
        sandbox.reset()
        async with Client(build_server(settings.model_copy(update={"state_dir": ":memory:", "database_url": None})), mode="legacy",
                          extensions=extensions) as c:
            results.append(await _start(c))
    with_apps, without = results
    assert set(without["structured"]) == {"interview_id", "initial_message"}
    ids = with_apps["structured"]["interview_id"], without["structured"]["interview_id"]
    # the view alone also gets the first question as data (the sandbox's brief opens with an open question)
    assert {**with_apps["structured"], "interview_id": ids[1]} == {**without["structured"],
                                                                   "question": {"type": "open_ended"}}
    text = without["text"]
    assert text.startswith(f"Interview started. interview_id: {ids[1]}\n")
    assert text.endswith(f'send_interview_message(interview_id="{ids[1]}", content=...). The session token stays on '
                         "this server.")
    assert with_apps["text"].replace(ids[0], ids[1]) == text


async def test_send_interview_message_carries_the_question(client: Client, sandbox) -> None:
    iid = (await _start(client))["structured"]["interview_id"]
    seen = []
    for answer in ("Fine", "8", "Documentation", "Reports", "Lower price, Faster performance", "Yes"):
        result = await client.call_tool("send_interview_message", {"interview_id": iid, "content": answer})
        assert not result.is_error, result.content[0].text
        seen.append(result.structured_content.get("question"))
    assert seen == [
        {"type": "scale", "min": 1, "max": 10},
        {"type": "single_choice", "options": ["Documentation", "Video tutorials", "Customer support", "Community forum"]},
        {"type": "multiple_choice", "options": ["Dashboards", "Reports", "Integrations", "Alerts", "Mobile app"]},
        {"type": "ranking", "options": ["Faster performance", "Better documentation", "More integrations", "Lower price"]},
        {"type": "yes_no"},
        None,
    ]
    assert result.structured_content["ended"] is True


async def test_question_follows_the_interview_locale(client: Client, sandbox) -> None:
    result = await client.call_tool("start_interview", {"locale": "es"})
    iid = result.structured_content["interview_id"]
    for _ in range(2):
        result = await client.call_tool("send_interview_message", {"interview_id": iid, "content": "5"})
    assert result.structured_content["question"]["type"] == "single_choice"
    assert "Documentation" not in result.structured_content["question"]["options"]  # the Spanish labels


# -- the tolerant parser -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "parsed"), [
    ({"type": "scale", "min": 1, "max": 5, "labels": ["Hard", "Easy"]},
     {"type": "scale", "min": 1, "max": 5, "labels": {"min": "Hard", "max": "Easy"}}),
    ({"question_type": "Rating", "scale_min": 0, "scale_max": 10.0}, {"type": "scale", "min": 0, "max": 10}),
    ({"type": "multi-select", "choices": [{"label": "A"}, {"value": "B"}, "A", True, None]},
     {"type": "multiple_choice", "options": ["A", "B"]}),
    ({"questionType": "boolean"}, {"type": "yes_no"}),
    ({"type": "open_ended"}, {"type": "open_ended"}),
    ({"type": "single_choice", "options": ["only one"]}, None),  # a choice needs two options
    ({"type": "scale", "min": 5, "max": 5}, None),
    ({"type": "scale", "min": "1", "max": "5"}, None),
    ({"type": "matrix", "options": ["a", "b"]}, None),
    ({"options": ["a", "b"]}, None),
    ("scale", None),
    (None, None),
])
def test_parse_question_is_tolerant(raw, parsed) -> None:
    assert parse_question(raw) == parsed


def test_option_text_is_cleaned_and_capped() -> None:
    question = parse_question({"type": "ranking", "options": ["a\u200b\nb", "x" * 500, *[f"o{i}" for i in range(60)]]})
    assert question is not None
    assert question["options"][0] == "a b"  # invisible characters gone, one line
    assert question["options"][1].startswith("x" * 200) and "more characters cut" in question["options"][1]
    assert len(question["options"][1]) < 240
    assert len(question["options"]) == 30


def test_question_found_in_json_and_sse_replies() -> None:
    q = {"type": "yes_no"}
    assert parse_json_reply({"interviewer_response": {"content": "Hi?", "question": q}}).question == q
    assert parse_json_reply({"interviewer_response": {"content": "Hi?"}, "next_question": q}).question == q
    assert parse_json_reply({"interviewer_response": {"content": "Hi?"}, "question": "not an object"}).question is None
    body = ('event: delta\ndata: {"type": "delta", "content": "Hi"}\n\n'
            'event: done\ndata: {"type": "done", "interview_status": "active", "question": {"type": "yes_no"}}\n\n'
            "data: [DONE]\n\n")
    assert parse_sse_reply(body).question == q


def test_start_body_question_is_read_tolerantly() -> None:
    from koji_mcp.koji.models import StartResponse

    body = {"interview_id": "iv-1", "session_token": "t", "initial_message": "Hi"}
    assert StartResponse.model_validate({**body, "question": {"type": "rating", "min": 1, "max": 5}}).question == {
        "type": "scale", "min": 1, "max": 5}
    assert StartResponse.model_validate({**body, "question": ["not", "an", "object"]}).question is None
    assert StartResponse.model_validate(body).question is None
