"""search and fetch over streamable HTTP with two client tokens: each client finds only its own interviews."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from tests.e2e.test_auth_http import ALICE, BOB, as_client, authed  # noqa: F401 (authed: the fixture)

pytestmark = pytest.mark.anyio


async def results(c: Client, query: str) -> list[str]:
    r = await c.call_tool("search", {"query": query})
    assert not r.is_error, r.content[0].text
    assert json.loads(r.content[0].text) == r.structured_content
    return [hit["id"] for hit in r.structured_content["results"]]


async def test_search_and_fetch_see_only_the_callers_interviews(authed, sandbox) -> None:
    port, _ = authed
    async with as_client(port, ALICE) as alice:
        started = await alice.call_tool("start_interview", {"respondent": {"external_id": "a-7", "display_name": "Ada"}})
        iid = started.structured_content["interview_id"]
        await alice.call_tool("send_interview_message", {"interview_id": iid, "content": "The kanban board rocks."})
        fetched = await alice.call_tool("fetch", {"id": iid})
        assert not fetched.is_error, fetched.content[0].text
        assert fetched.structured_content["metadata"]["external_id"] == "a-7"
        assert "[respondent] The kanban board rocks." in fetched.structured_content["text"]
        for query in ("a-7", "Ada", "kanban"):
            assert await results(alice, query) == [iid], query
    gets_by_alice = len(sandbox.requests())

    async with as_client(port, BOB) as bob:
        for query in ("a-7", "Ada", "kanban", iid):
            assert await results(bob, query) == [], query
        theirs = await bob.call_tool("fetch", {"id": iid})
        unknown = await bob.call_tool("fetch", {"id": "00000000-0000-0000-0000-000000000000"})
        own = await bob.call_tool("start_interview", {"respondent": {"external_id": "b-1", "display_name": "Ada"}})
        bobs = own.structured_content["interview_id"]
        assert await results(bob, "Ada") == [bobs]  # the same name, only his own interview
    assert theirs.is_error and unknown.is_error
    assert theirs.content[0].text == unknown.content[0].text  # another's interview reads as unknown
    assert theirs.content[0].text.startswith("Koji rejected fetch (HTTP 404 not_found)")
    # Bob's fetches never reached Koji: only his start did
    assert [r["path"] for r in sandbox.requests()[gets_by_alice:]] == ["/api/v1/interviews/start"]
    async with as_client(port, ALICE) as alice:
        assert await results(alice, "Ada") == [iid]
