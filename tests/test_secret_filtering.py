"""Credentials in Koji's bodies never reach results, whatever key they hide under (issue 11, item 10).

A sandbox with an API key that has no recognisable shape (so masking by pattern cannot help) is made
to answer with the interview's own session token (also shapeless) and the key: under credential-like
names at every level (transcript messages, top-level structured_answers, nested analysis fields) and
under innocent names and inside prose. The real server is driven through the SDK's in-memory client;
neither secret may appear in any tool result (text and structuredContent) or the resource.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from koji_mcp.logs import mask
from koji_mcp.sandbox import KeySpec, SandboxConfig, SandboxServer
from koji_mcp.server.app import build_server
from tests.conftest import SandboxHandle, make_settings

pytestmark = pytest.mark.anyio

PLAIN_KEY = "koji-canary-key-q8ZtW4vN2rX9"  # not pk_live_-shaped: only masking by value can catch it
TOKEN = "opaque-canary-token-Jk3Lm9Qp2"  # not st_live_-shaped either
IID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
START = "/api/v1/interviews/start"


@pytest.fixture(scope="module")
def plain_key_server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(rate_limit=6000, extra_keys={PLAIN_KEY: KeySpec()})) as server:
        yield server


@pytest.fixture
def sandbox(plain_key_server: SandboxServer) -> Iterator[SandboxHandle]:
    handle = SandboxHandle(plain_key_server)
    handle.reset()
    yield handle
    handle.http.close()


@pytest.fixture
async def client(sandbox, tmp_path):
    settings = make_settings(sandbox.base_url, api_key=PLAIN_KEY, state_dir=str(tmp_path / "state"),
                             analysis_poll_seconds=0)
    async with Client(build_server(settings), mode="legacy") as c:
        yield c


def leaky_body() -> dict[str, Any]:
    return {
        "interview_id": IID, "status": "completed", "completion_reason": "natural",
        "respondent": {"display_name": "Ann", "metadata": {"session_token": TOKEN, "plan": "pro"}},
        "transcript": [
            {"role": "interviewer", "content": "Hello", "session_token": TOKEN, "meta": {"api_key": PLAIN_KEY}},
            {"role": "respondent", "content": f"my token is {TOKEN} and the key {PLAIN_KEY}",
             "innocent": TOKEN},
        ],
        "structured_answers": [{"questionId": "q1", "questionType": "open", "structuredValue": "x",
                                "session_token": TOKEN, "qualitativeAnswer": f"see {TOKEN}"}],
        "analysis": {"summary": f"Summary mentioning {PLAIN_KEY}", "themes": [{"name": TOKEN, "mentions": 1}],
                     "deep": {"nested": [{"Authorization": f"Bearer {PLAIN_KEY}", "harmless": PLAIN_KEY}]}},
        "debug": {"headers": {"X-Session-Token": TOKEN}, "echo": TOKEN},
    }


def assert_clean(where: str, text: str) -> None:
    for secret in (TOKEN, PLAIN_KEY, TOKEN[8:], PLAIN_KEY[8:]):
        assert secret not in text, f"{where} leaks {secret[:10]}…: {text[max(0, text.find(secret) - 80):][:200]!r}"


async def start(client: Client, sandbox: SandboxHandle, greeting: str = "Hi") -> None:
    sandbox.fault(method="POST", path=START, status=201,
                  json={"interview_id": IID, "session_token": TOKEN, "initial_message": greeting})
    result = await client.call_tool("start_interview", {"respondent": {"external_id": "s1"}})
    assert not result.is_error, result.content[0].text
    assert_clean("start_interview", result.model_dump_json(by_alias=True))


async def test_get_interview_filters_every_level_and_masks_by_value(client, sandbox) -> None:
    await start(client, sandbox)
    sandbox.fault(method="GET", path=f"/api/v1/interviews/{IID}", status=200, json=leaky_body(), times=2)
    result = await client.call_tool("get_interview", {"interview_id": IID, "include_transcript": True})
    assert not result.is_error, result.content[0].text
    assert_clean("get_interview", result.model_dump_json(by_alias=True))
    structured = result.structured_content
    assert "session_token" not in structured["transcript"][0]
    assert "api_key" not in structured["transcript"][0]["meta"]
    assert "session_token" not in structured["structured_answers"][0]
    assert structured["transcript"][1]["innocent"] == mask(TOKEN)  # kept, masked
    resource = await client.read_resource(f"koji://interviews/{IID}")
    assert_clean("resource", resource.model_dump_json(by_alias=True))
    assert json.loads(resource.contents[0].text)["koji"]["respondent"]["metadata"] == {"plan": "pro"}


async def test_the_greeting_the_reply_and_the_completion_are_masked(client, sandbox) -> None:
    await start(client, sandbox, greeting=f"Your token {TOKEN}, our key {PLAIN_KEY}")
    sandbox.fault(method="POST", path=f"/api/v1/interviews/{IID}/message", status=200,
                  json={"interviewer_response": {"content": f"token {TOKEN} key {PLAIN_KEY}"},
                        "interview_status": "active", "messages_count": 3})
    reply = await client.call_tool("send_interview_message", {"interview_id": IID, "content": "hi"})
    assert not reply.is_error, reply.content[0].text
    assert f"token {mask(TOKEN)} key {mask(PLAIN_KEY)}" in reply.content[0].text
    assert_clean("send_interview_message", reply.model_dump_json(by_alias=True))
    sandbox.fault(method="POST", path="/api/interview/complete", status=200,
                  json={"status": "completed", "completion_reason": f"natural {TOKEN}",
                        "analysis_status": PLAIN_KEY})
    done = await client.call_tool("complete_interview", {"interview_id": IID, "reason": "natural"})
    assert not done.is_error, done.content[0].text
    assert_clean("complete_interview", done.model_dump_json(by_alias=True))
