"""The whole interview loop through the real MCP client against the real sandbox over HTTP."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from koji_mcp.sandbox import SandboxConfig, SandboxServer
from koji_mcp.server.app import build_server
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

ANSWERS = [
    "Setup was confusing at first but the dashboards were great once I found them.",
    "I'd say 7 out of 10.",
    "Video tutorials, definitely.",
    "Dashboards, Alerts and Reports.",
    "Lower price first, then faster performance, then more integrations, then better documentation.",
    "Yes, I already did.",
]
EXPECTED_ANSWERS = {
    "q2": ("scale", 7),
    "q3": ("single_choice", "Video tutorials"),
    "q4": ("multiple_choice", ["Dashboards", "Reports", "Alerts"]),
    "q5": ("ranking", ["Lower price", "Faster performance", "More integrations", "Better documentation"]),
    "q6": ("yes_no", True),
}


async def start(c: Client, **args) -> str:
    result = await c.call_tool("start_interview", {"respondent": {"external_id": "u-1", "display_name": "Jane"}, **args})
    assert not result.is_error, result.content[0].text
    return result.structured_content["interview_id"]


async def test_full_loop_to_typed_structured_answers(client: Client, sandbox) -> None:
    iid = await start(client)
    results = []
    for answer in ANSWERS:
        r = await client.call_tool("send_interview_message", {"interview_id": iid, "content": answer})
        assert not r.is_error, r.content[0].text
        results.append(r)
    replies = [r.structured_content for r in results]
    assert [r["ended"] for r in replies] == [False] * 5 + [True]
    assert replies[-1]["interview_status"] != "active"
    assert all("<<<KOJI INTERVIEWER" in r.content[0].text for r in results)
    assert "Show the reply to the respondent and relay their answer" in results[0].content[0].text
    assert f'call complete_interview(interview_id="{iid}", reason="natural")' in results[-1].content[0].text
    after_end = await client.call_tool("send_interview_message", {"interview_id": iid, "content": "one more"})
    assert after_end.is_error and "has ended naturally" in after_end.content[0].text

    first = await client.call_tool("complete_interview", {"interview_id": iid, "reason": "natural"})
    second = await client.call_tool("complete_interview", {"interview_id": iid, "reason": "natural"})
    assert not first.is_error, first.content[0].text
    assert first.structured_content == second.structured_content
    assert first.content[0].text == second.content[0].text
    assert first.structured_content["status"] == "completed"
    assert first.structured_content["completion_reason"] == "natural"

    got = await client.call_tool("get_interview", {"interview_id": iid})
    assert not got.is_error, got.content[0].text
    data = got.structured_content
    assert data["status"] == "completed" and data["analysis_status"] == "ready"
    assert data["respondent"]["display_name"] == "Jane"
    by_id = {a["questionId"]: a for a in data["structured_answers"]}
    for qid, (qtype, value) in EXPECTED_ANSWERS.items():
        assert by_id[qid]["questionType"] == qtype
        assert by_id[qid]["structuredValue"] == value, qid
        assert type(by_id[qid]["structuredValue"]) is type(value), qid
        assert 0 < by_id[qid]["confidence"] <= 1
    assert data["analysis"]["summary"] and data["analysis"]["themes"]
    assert "transcript" not in data and data["transcript_total"] == 13
    text = got.content[0].text
    assert "<<<KOJI ANALYSIS" in text and '- q2 [scale] How easy was it to get set up? -> 7' in text

    # exactly one request per message and per complete call reached Koji (the second complete is local)
    paths = [(r["method"], r["path"].replace(iid, "ID")) for r in sandbox.requests()]
    assert paths.count(("POST", "/api/v1/interviews/ID/message")) == 6
    assert paths.count(("POST", "/api/interview/complete")) == 1


async def test_message_requests_carry_the_session_token_from_the_ledger(legacy_client: Client, sandbox) -> None:
    iid = await start(legacy_client)
    await legacy_client.call_tool("send_interview_message", {"interview_id": iid, "content": "hello"})
    [koji] = sandbox.interviews()
    sent = sandbox.requests()[-1]
    assert sent["headers"]["x-session-token"] == koji["session_token"]
    assert sent["json"] == {"content": "hello"}
    assert "text/event-stream" in sent["headers"]["accept"]


async def test_sse_and_json_replies_read_the_same(sandbox, settings) -> None:
    """The sandbox streams SSE when asked; the JSON shape is exercised via a fault with Koji's older body."""
    async with Client(build_server(settings), mode="legacy") as c:
        iid = await start(c)
        sse = await c.call_tool("send_interview_message", {"interview_id": iid, "content": "It went fine."})
        sandbox.fault(path=f"/api/v1/interviews/{iid}/message", status=200, json={
            "message_id": "msg_1", "interviewer_response": {"content": "Thanks! How easy was setup?", "message_id": "msg_2"},
            "interview_status": "active", "messages_count": 4})
        js = await c.call_tool("send_interview_message", {"interview_id": iid, "content": "ok"})
    assert not sse.is_error and sse.structured_content["interviewer_message"].startswith("Thanks")
    assert js.structured_content == {"interview_id": iid, "interviewer_message": "Thanks! How easy was setup?",
                                     "interview_status": "active", "ended": False, "messages_count": 4}


@pytest.mark.parametrize("variant", ["legacy_message_route", "legacy_complete_route"])
async def test_route_fallback_is_used_and_remembered(variant, tmp_path) -> None:
    config = (SandboxConfig(message_routes=frozenset({"messages"})) if variant == "legacy_message_route"
              else SandboxConfig(complete_routes=frozenset({"legacy"})))
    with SandboxServer(config) as server:
        settings = make_settings(server.base_url, state_dir=str(tmp_path))
        async with Client(build_server(settings), mode="legacy") as c:
            iid = await start(c)
            for text in ["one", "two"]:
                r = await c.call_tool("send_interview_message", {"interview_id": iid, "content": text})
                assert not r.is_error, r.content[0].text
            done = await c.call_tool("complete_interview", {"interview_id": iid})
            assert not done.is_error, done.content[0].text
        import httpx

        log = [(r["path"].replace(iid, "ID"), r["status"]) for r in
               httpx.get(f"{server.base_url}/_sandbox/requests").json()["requests"]]
    if variant == "legacy_message_route":
        assert log[1:4] == [("/api/v1/interviews/ID/message", 404), ("/api/v1/interviews/ID/messages", 200),
                            ("/api/v1/interviews/ID/messages", 200)]
    else:
        assert log[-2:] == [("/api/interview/complete", 404), ("/api/v1/interviews/ID/complete", 200)]


async def test_expired_session_token(legacy_client: Client, sandbox) -> None:
    iid = await start(legacy_client)
    [koji] = sandbox.interviews()
    # Koji expired the session (e.g. it timed out): simulate with the documented 401
    sandbox.fault(path=f"/api/v1/interviews/{iid}/message", status=401,
                  json={"error": "invalid_session_token", "message": "The session token is invalid or expired."})
    r = await legacy_client.call_tool("send_interview_message", {"interview_id": iid, "content": "hi"})
    assert r.is_error
    assert r.content[0].text == (
        "Koji rejected send_interview_message (HTTP 401 invalid_session_token): The session token is invalid or expired.\n"
        "Koji did not act on the request. This interview's session has expired (it was completed or timed out); "
        "start a new interview.")
    again = await legacy_client.call_tool("send_interview_message", {"interview_id": iid, "content": "hi"})
    assert again.content[0].text == f"Interview {iid}'s session has expired; start a new interview."
    assert koji["session_token"] not in r.content[0].text


async def test_message_guards(legacy_client: Client, sandbox) -> None:
    empty = await legacy_client.call_tool("send_interview_message", {"interview_id": "abc", "content": "  "})
    assert empty.content[0].text.startswith("content is empty")
    iid = await start(legacy_client)
    long = await legacy_client.call_tool("send_interview_message", {"interview_id": iid, "content": "x" * 5001})
    assert long.is_error and "the limit is 5,000" in long.content[0].text
    unknown = await legacy_client.call_tool("send_interview_message", {"interview_id": "nope-123", "content": "hi"})
    assert unknown.is_error and unknown.content[0].text.startswith("Unknown interview_id 'nope-123'")
    bad = await legacy_client.call_tool("send_interview_message", {"interview_id": "../../etc", "content": "hi"})
    assert bad.is_error and "- interview_id: must be an interview_id" in bad.content[0].text
    await legacy_client.call_tool("complete_interview", {"interview_id": iid})
    after = await legacy_client.call_tool("send_interview_message", {"interview_id": iid, "content": "hi"})
    assert after.is_error and "already completed" in after.content[0].text
    # only the start, the one long-message-free complete: guards sent nothing
    assert [r["path"].rsplit("/", 1)[-1] for r in sandbox.requests()] == ["start", "complete"]


async def test_analysis_pending_says_when_to_check_again(tmp_path) -> None:
    with SandboxServer(SandboxConfig(analysis_delay=60)) as server:
        settings = make_settings(server.base_url, state_dir=str(tmp_path), analysis_poll_seconds=0)
        async with Client(build_server(settings), mode="legacy") as c:
            iid = await start(c)
            before = await c.call_tool("get_interview", {"interview_id": iid})
            await c.call_tool("complete_interview", {"interview_id": iid, "reason": "respondent_left"})
            pending = await c.call_tool("get_interview", {"interview_id": iid})
    assert before.structured_content["analysis_status"] == "not_started"
    assert "Analysis: not started; it runs after complete_interview." in before.content[0].text
    assert pending.structured_content["analysis_status"] == "pending"
    assert pending.structured_content["check_again_in_seconds"] == 10
    assert "Analysis: pending. Koji is still analysing; check again in about 10 s." in pending.content[0].text


async def test_transcript_is_paged(legacy_client: Client) -> None:
    iid = await start(legacy_client)
    for answer in ANSWERS[:3]:
        await legacy_client.call_tool("send_interview_message", {"interview_id": iid, "content": answer})
    full = await legacy_client.call_tool("get_interview", {"interview_id": iid, "include_transcript": True})
    data = full.structured_content
    assert data["transcript_total"] == 7 and len(data["transcript"]) == 7 and "next_transcript_offset" not in data
    assert [m["role"] for m in data["transcript"][:2]] == ["interviewer", "respondent"]
    assert "<<<KOJI TRANSCRIPT" in full.content[0].text
    page = await legacy_client.call_tool("get_interview", {"interview_id": iid, "include_transcript": True, "transcript_offset": 5})
    assert [m["content"] for m in page.structured_content["transcript"]] == [m["content"] for m in data["transcript"][5:]]


async def test_unknown_fields_from_koji_are_kept(legacy_client: Client, sandbox) -> None:
    iid = await start(legacy_client)
    body = {"interview_id": iid, "status": "active", "quality_gate": {"passed": True}, "study_id": "s1",
            "analysis": None, "transcript": []}
    sandbox.fault(path=f"/api/v1/interviews/{iid}", method="GET", status=200, json=body)
    r = await legacy_client.call_tool("get_interview", {"interview_id": iid})
    assert r.structured_content["extra"] == {"quality_gate": {"passed": True}, "study_id": "s1"}


async def test_get_unknown_interview(legacy_client: Client) -> None:
    r = await legacy_client.call_tool("get_interview", {"interview_id": "00000000-0000-0000-0000-000000000000"})
    assert r.is_error
    assert r.content[0].text.startswith("Koji rejected get_interview (HTTP 404 not_found)")


async def test_list_interviews_filters_and_pages(legacy_client: Client) -> None:
    ids = []
    for n in range(5):
        r = await legacy_client.call_tool("start_interview", {"respondent": {"external_id": f"p{n % 2}"}})
        ids.append(r.structured_content["interview_id"])
    await legacy_client.call_tool("complete_interview", {"interview_id": ids[0]})

    page1 = (await legacy_client.call_tool("list_interviews", {"limit": 2})).structured_content
    assert [i["interview_id"] for i in page1["interviews"]] == ids[::-1][:2]
    assert page1["total"] == 5 and page1["next_cursor"]
    page2 = (await legacy_client.call_tool("list_interviews", {"limit": 2, "cursor": page1["next_cursor"]})).structured_content
    page3 = (await legacy_client.call_tool("list_interviews", {"limit": 2, "cursor": page2["next_cursor"]})).structured_content
    assert [i["interview_id"] for i in page2["interviews"] + page3["interviews"]] == ids[::-1][2:]
    assert "next_cursor" not in page3
    done = (await legacy_client.call_tool("list_interviews", {"status": "completed"})).structured_content
    assert [i["interview_id"] for i in done["interviews"]] == [ids[0]]
    p1 = (await legacy_client.call_tool("list_interviews", {"external_id": "p1"})).structured_content
    assert [i["interview_id"] for i in p1["interviews"]] == [ids[3], ids[1]]
    assert all("session_token" not in json.dumps(i) for i in page1["interviews"])
    bad = await legacy_client.call_tool("list_interviews", {"status": "weird"})
    assert bad.is_error and bad.content[0].text.startswith("status must be one of active, ended, completed")


async def test_interview_resource(legacy_client: Client, sandbox) -> None:
    iid = await start(legacy_client)
    templates = await legacy_client.list_resource_templates()
    assert [t.uri_template for t in templates.resource_templates] == ["koji://interviews/{interview_id}",
                                                                       "koji://batches/{batch_id}"]
    read = await legacy_client.read_resource(f"koji://interviews/{iid}")
    doc = json.loads(read.contents[0].text)
    assert doc["ledger"]["interview_id"] == iid and doc["ledger"]["external_id"] == "u-1"
    assert doc["koji"]["status"] == "active"
    [koji] = sandbox.interviews()
    assert koji["session_token"] not in read.contents[0].text


async def test_prompts(legacy_client: Client) -> None:
    prompts = await legacy_client.list_prompts()
    assert {p.name for p in prompts.prompts} == {"conduct_interview", "invite_participants"}
    got = await legacy_client.get_prompt("conduct_interview", {"display_name": "Jane", "locale": "es"})
    text = got.messages[0].content.text
    assert 'start_interview with respondent {"display_name": "Jane"} and locale "es"' in text
    assert "send_interview_message" in text and "complete_interview" in text


async def test_odd_completion_and_interview_bodies_are_not_called_invalid_arguments(legacy_client, sandbox) -> None:
    r = await legacy_client.call_tool("start_interview", {})
    iid = r.structured_content["interview_id"]
    sandbox.fault(path="/api/interview/complete", status=200,
                  json={"interview_id": iid, "status": "completed", "completed_at": 1705312860})
    done = await legacy_client.call_tool("complete_interview", {"interview_id": iid})
    assert not done.is_error, done.content[0].text
    assert done.structured_content["completed_at"] == "1705312860"
    sandbox.fault(path=f"/api/v1/interviews/{iid}", method="GET", status=200,
                  json={"interview_id": iid, "status": "active", "respondent": "r_123", "transcript": ["hello", 7]})
    got = await legacy_client.call_tool("get_interview", {"interview_id": iid, "include_transcript": True})
    assert not got.is_error, got.content[0].text
    assert got.structured_content["respondent"] == {"value": "r_123"}
    assert [m["content"] for m in got.structured_content["transcript"]] == ["hello", "7"]
