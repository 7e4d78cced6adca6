"""start_interview through the real MCP client, against the real sandbox over HTTP."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from koji_mcp import USER_AGENT
from koji_mcp.interviews.ledger import Ledger
from koji_mcp.sandbox import DEMO_KEY

pytestmark = pytest.mark.anyio

JANE = {"external_id": "user_12345", "display_name": "Jane Doe", "metadata": {"segment": "power_users", "seats": 12, "trial": False, "note": None}}


async def test_start_sends_exactly_the_documented_request(client: Client, sandbox) -> None:
    result = await client.call_tool("start_interview", {"respondent": JANE, "mode": "text", "locale": "en"})

    assert not result.is_error, result.content[0].text
    [sent] = sandbox.requests()
    assert sent["method"] == "POST"
    assert sent["path"] == "/api/v1/interviews/start"
    assert sent["headers"]["authorization"] == f"Bearer {DEMO_KEY}"
    assert sent["headers"]["content-type"] == "application/json"
    assert sent["headers"]["accept"] == "application/json"
    assert sent["headers"]["user-agent"] == USER_AGENT
    assert sent["json"] == {"respondent": JANE, "mode": "text", "locale": "en"}


async def test_start_returns_id_and_greeting_but_never_the_session_token(client: Client, sandbox, settings) -> None:
    result = await client.call_tool("start_interview", {"respondent": {"display_name": "Jane"}})

    [koji] = sandbox.interviews()
    structured = result.structured_content
    assert structured == {"interview_id": koji["interview_id"], "initial_message": koji["transcript"][0]["content"]}
    assert structured["initial_message"].startswith("Hi Jane")
    text = result.content[0].text
    assert f"interview_id: {koji['interview_id']}" in text
    assert "<<<KOJI INTERVIEWER" in text and "KOJI INTERVIEWER>>>" in text
    assert structured["initial_message"] in text
    assert koji["session_token"] not in json.dumps(result.model_dump(mode="json"))
    # ... the token is kept server-side, in the ledger
    ledger = Ledger.open(settings.state_dir, sandbox.base_url, database_url=settings.ledger_database_url)
    entry = ledger.get(koji["interview_id"])
    assert entry is not None and entry.session_token == koji["session_token"] and entry.display_name == "Jane"


async def test_start_sends_only_given_fields(client: Client, sandbox) -> None:
    await client.call_tool("start_interview", {})
    await client.call_tool("start_interview", {"mode": "voice"})
    await client.call_tool("start_interview", {"respondent": {"metadata": {"k": "v"}}, "locale": "pt-BR"})

    bodies = [r["json"] for r in sandbox.requests()]
    assert bodies == [{}, {"mode": "voice"}, {"respondent": {"metadata": {"k": "v"}}, "locale": "pt-BR"}]


async def test_echoes_mode_and_locale_when_given(client: Client) -> None:
    result = await client.call_tool("start_interview", {"mode": "text", "locale": "es"})
    assert result.structured_content["mode"] == "text"
    assert result.structured_content["locale"] == "es"


async def test_progress_is_reported(legacy_client: Client) -> None:
    seen: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message)

    result = await legacy_client.call_tool("start_interview", {}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == ["starting the interview at Koji", "interview started"]


@pytest.mark.parametrize(
    ("arguments", "expected_line"),
    [
        ({"respondent": {"metadata": {"team": {"name": "x"}}}},
         "- respondent.metadata: must be flat: value of 'team' is an object;"),
        ({"respondent": {"metadata": {"tags": ["a", "b"]}}},
         "- respondent.metadata: must be flat: value of 'tags' is an array;"),
        ({"locale": "english"}, "- locale: must be a locale code such as 'en', 'es' or 'pt-BR'"),
        ({"locale": "en_US"}, "- locale: must be a locale code such as 'en', 'es' or 'pt-BR'"),
        ({"mode": "video"}, "- mode: Input should be 'text' or 'voice'"),
        ({"project": "p1"}, "- project: unknown field (not part of this tool's input schema)"),
        ({"respondent": {"email": "a@b.c"}}, "- respondent.email: unknown field (not part of this tool's input schema)"),
        ({"metadata": {"a": 1}}, "- metadata: unknown field (not part of this tool's input schema)"),
        ({"respondent": {"display_name": ""}}, "- respondent.display_name: String should have at least 1 character"),
    ],
)
async def test_invalid_arguments_are_rejected_before_anything_is_sent(
    client: Client, sandbox, arguments: dict, expected_line: str
) -> None:
    result = await client.call_tool("start_interview", arguments)

    assert result.is_error
    assert result.structured_content is None
    text = result.content[0].text
    assert text.startswith("Invalid arguments for start_interview; nothing was sent to Koji.\n")
    assert expected_line in text
    assert text.endswith("Fix these fields (see the tool's input schema) and call start_interview again.")
    assert sandbox.requests() == []


@pytest.mark.parametrize("value", ["text", 42, 3.5, True, False, None, ""])
async def test_scalar_metadata_values_are_accepted(client: Client, sandbox, value) -> None:
    result = await client.call_tool("start_interview", {"respondent": {"metadata": {"v": value}}})
    assert not result.is_error, result.content[0].text
    assert sandbox.requests()[0]["json"] == {"respondent": {"metadata": {"v": value}}}


@pytest.mark.parametrize("locale", ["en", "es", "fr", "de", "pt-BR"])
async def test_valid_locales_are_sent(client: Client, sandbox, locale: str) -> None:
    result = await client.call_tool("start_interview", {"locale": locale})
    assert not result.is_error, result.content[0].text
    assert sandbox.requests()[0]["json"] == {"locale": locale}
