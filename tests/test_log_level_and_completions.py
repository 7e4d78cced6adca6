"""logging/setLevel and completion/complete (src/koji_mcp/server/log_level_and_completions.py), through the SDK's real client."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from mcp import Client, MCPError
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequest,
    SetLevelRequestParams,
)

from koji_mcp.config import Settings
from koji_mcp.interviews.ledger import Ledger
from koji_mcp.server.log_level_and_completions import LOCALES, MAX_VALUES
from koji_mcp.server.app import build_server
from tests.conftest import seed

pytestmark = pytest.mark.anyio

TEMPLATE = ResourceTemplateReference(uri="koji://interviews/{interview_id}")
CONDUCT = PromptReference(name="conduct_interview")
START = "/api/v1/interviews/start"


@pytest.fixture
def package_logger() -> Iterator[logging.Logger]:
    """The `koji_mcp` logger, restored afterwards (setLevel changes it process-wide)."""
    log = logging.getLogger("koji_mcp")
    before = log.level
    yield log
    log.setLevel(before)


async def set_level(client: Client, level: str) -> object:
    with warnings.catch_warnings():  # the SDK marks the logging capability deprecated (2026-07-28)
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        return await client.set_logging_level(level)  # type: ignore[arg-type]


async def completions(client: Client, ref: ResourceTemplateReference | PromptReference, name: str, value: str):
    return (await client.complete(ref, {"name": name, "value": value})).completion


# -- capabilities ---------------------------------------------------------------------------------


async def test_handshake_advertises_logging_and_completions(legacy_client: Client) -> None:
    caps = legacy_client.server_capabilities
    assert caps.logging is not None
    assert caps.completions is not None
    assert caps.resources is not None and caps.resources.subscribe  # koji://batches/{id} (server/subscriptions.py)


async def test_completions_advertised_in_both_modes(client: Client) -> None:
    assert client.server_capabilities.completions is not None


# -- logging/setLevel -----------------------------------------------------------------------------


async def test_set_level_returns_empty_result_and_sets_the_package_logger(
    legacy_client: Client, package_logger: logging.Logger
) -> None:
    result = await set_level(legacy_client, "debug")
    assert result.model_dump(exclude_none=True) == {}
    assert package_logger.level == logging.DEBUG
    await set_level(legacy_client, "error")
    assert package_logger.level == logging.ERROR
    await set_level(legacy_client, "notice")  # RFC 5424 levels without a Python twin map to the nearest
    assert package_logger.level == logging.INFO
    await set_level(legacy_client, "emergency")
    assert package_logger.level == logging.CRITICAL


async def test_set_level_filters_what_koji_mcp_logs(
    legacy_client: Client, package_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root accepts everything: only the client's level filters
    await set_level(legacy_client, "warning")
    caplog.clear()
    result = await legacy_client.call_tool("start_interview", {"mode": "text"})
    assert not result.is_error
    assert not [r for r in caplog.records if r.name.startswith("koji_mcp") and r.levelno < logging.WARNING]
    await set_level(legacy_client, "info")
    caplog.clear()
    await legacy_client.call_tool("start_interview", {"mode": "text"})
    assert any(r.name == "koji_mcp.koji.client" and "POST /api/v1/interviews/start -> 201" in r.getMessage()
               for r in caplog.records)


async def test_set_level_rejects_an_unknown_level(legacy_client: Client, package_logger: logging.Logger) -> None:
    before = package_logger.level
    # The client validates levels, so build the request around its validation.
    request = SetLevelRequest.model_construct(
        method="logging/setLevel", params=SetLevelRequestParams.model_construct(level="verbose")
    )
    with pytest.raises(MCPError) as info:
        await legacy_client.session.send_request(request, EmptyResult)
    assert info.value.error.code == INVALID_PARAMS
    assert package_logger.level == before


async def test_set_level_is_gone_in_the_2026_protocol(settings: Settings) -> None:
    async with Client(build_server(settings), mode="auto") as client:
        assert client.protocol_version >= "2026"
        with pytest.raises(MCPError) as info:
            await set_level(client, "debug")
    assert info.value.error.code == METHOD_NOT_FOUND


# -- completion/complete --------------------------------------------------------------------------


async def test_locale_completion_matches_the_prefix_case_insensitively(client: Client) -> None:
    assert (await completions(client, CONDUCT, "locale", "pt")).values == ["pt-BR", "pt-PT"]
    assert (await completions(client, CONDUCT, "locale", "PT-b")).values == ["pt-BR"]
    everything = await completions(client, CONDUCT, "locale", "")
    assert everything.values == list(LOCALES)
    assert everything.values[:2] == ["en", "en-US"] and "es" in everything.values and "de" in everything.values
    assert everything.total == len(LOCALES) and not everything.has_more
    assert (await completions(client, CONDUCT, "locale", "xx")).values == []


async def test_locale_suggestions_are_valid_locales() -> None:
    import re

    from koji_mcp.koji.models import LOCALE_PATTERN

    assert all(re.fullmatch(LOCALE_PATTERN, code) for code in LOCALES)
    assert len(set(LOCALES)) == len(LOCALES)


async def test_interview_id_completion_comes_from_the_ledger_newest_first(client: Client) -> None:
    assert (await completions(client, TEMPLATE, "interview_id", "")).values == []
    ids = []
    for name in ("Ana", "Ben", "Cy"):
        result = await client.call_tool("start_interview", {"respondent": {"display_name": name}})
        ids.append(result.structured_content["interview_id"])
    got = await completions(client, TEMPLATE, "interview_id", "")
    assert got.values == ids[::-1] and got.total == 3 and not got.has_more
    prefix = ids[1][:12]
    assert (await completions(client, TEMPLATE, "interview_id", prefix)).values == [
        i for i in ids[::-1] if i.startswith(prefix)
    ]
    assert (await completions(client, TEMPLATE, "interview_id", "no-such-")).values == []


async def test_interview_id_completion_leaves_out_placeholders(legacy_client: Client, sandbox) -> None:
    sandbox.fault(path=START, status=500, json={"error": "internal_error", "message": "boom"})
    failed = await legacy_client.call_tool("start_interview", {"mode": "text"})
    assert failed.is_error  # outcome unknown: kept in the ledger under an "unknown-…" placeholder
    listed = await legacy_client.call_tool("list_interviews", {})
    assert any(i["interview_id"].startswith("unknown-") for i in listed.structured_content["interviews"])
    ok = await legacy_client.call_tool("start_interview", {"mode": "text"})
    got = await completions(legacy_client, TEMPLATE, "interview_id", "")
    assert got.values == [ok.structured_content["interview_id"]]


async def test_interview_id_completion_caps_at_100_values(settings: Settings, sandbox) -> None:
    ledger = Ledger.open(settings.state_dir, sandbox.base_url, database_url=settings.ledger_database_url)
    try:
        for n in range(MAX_VALUES + 30):
            seed(ledger, f"int_{n:04d}", f"st_{n}")
    finally:
        ledger.close()
    async with Client(build_server(settings), mode="legacy") as client:
        got = await completions(client, TEMPLATE, "interview_id", "int_")
        assert len(got.values) == MAX_VALUES and got.has_more and got.total is None
        assert got.values[0] == f"int_{MAX_VALUES + 29:04d}"  # newest first
        few = await completions(client, TEMPLATE, "interview_id", "int_000")
        assert few.values == [f"int_{n:04d}" for n in range(9, -1, -1)] and few.total == 10


async def test_other_references_complete_to_nothing(client: Client) -> None:
    # What the conformance suite sends (a prompt koji-mcp does not have): an empty list, not an error.
    assert (await completions(client, PromptReference(name="test_prompt_with_arguments"), "arg1", "t")).values == []
    assert (await completions(client, CONDUCT, "display_name", "J")).values == []
    assert (await completions(client, PromptReference(name="invite_participants"), "locale", "e")).values == []
    other = ResourceTemplateReference(uri="koji://other/{interview_id}")
    assert (await completions(client, other, "interview_id", "")).values == []


def test_the_one_private_sdk_attribute_is_still_where_we_reach_it(settings: Settings) -> None:
    """server/sdk.py reaches MCPServer._lowlevel_server (no public way to add logging/setLevel):
    this fails loudly the day the SDK moves it."""
    from koji_mcp.server.sdk import lowlevel_server

    server = build_server(settings)
    lowlevel = lowlevel_server(server)
    assert lowlevel is server._lowlevel_server
    assert lowlevel.get_request_handler("logging/setLevel") is not None
    assert lowlevel.get_request_handler("completion/complete") is not None
    with pytest.raises(RuntimeError, match="MCPServer._lowlevel_server is no longer"):
        lowlevel_server(object())  # type: ignore[arg-type]
