"""Auth rules that hold whatever the transport: fail closed, the reserved owner, one tool->scope map."""

from __future__ import annotations

import pytest
from mcp import Client, MCPError
from mcp.types import ResourceTemplateReference

from koji_mcp.server.app import build_server
from koji_mcp.server.auth import AuthConfigError, ClientToken, parse_tokens
from koji_mcp.server.scopes import READ_SCOPE, WRITE_SCOPE
from koji_mcp.server.jwt_auth import metadata_urls, token_scopes
from koji_mcp.server.tools import ALL_TOOLS, READ_TOOLS, WRITE_TOOLS

pytestmark = pytest.mark.anyio
ALICE = ClientToken("alice", "alice-token-0123456789abcdef")


async def test_with_auth_on_a_request_without_a_client_never_becomes_the_local_user(settings) -> None:
    """Fail closed: the CLI's ("local") interviews stay out of reach of an unauthenticated request."""
    async with Client(build_server(settings), mode="legacy") as local:  # stdio-like: the local user
        started = await local.call_tool("start_interview", {"respondent": {"external_id": "cli-1"}})
    iid = started.structured_content["interview_id"]

    # The same state dir, auth configured, but the request arrives without any token (in-process).
    for issuer in (None, "https://idp.example.com"):
        server = build_server(settings.model_copy(update={"oauth_issuer": issuer}), tokens=[ALICE])
        async with Client(server, mode="legacy") as anonymous:
            tools = (await anonymous.list_tools()).tools
            listed = await anonymous.call_tool("list_interviews", {})
            sent = await anonymous.call_tool("send_interview_message", {"interview_id": iid, "content": "hi"})
            with pytest.raises(MCPError) as read:
                await anonymous.read_resource(f"koji://interviews/{iid}")
            with pytest.raises(MCPError):
                await anonymous.complete(ResourceTemplateReference(type="ref/resource", uri="koji://interviews/{interview_id}"),
                                         {"name": "interview_id", "value": ""})
        assert tools == []
        for name, result in (("list_interviews", listed), ("send_interview_message", sent)):
            assert result.is_error and result.content[0].text == (
                f"{name}: Not authenticated: this server requires a bearer token, and this request carries no "
                "authenticated client, so nothing was read or sent.")
        assert "Not authenticated" in str(read.value)


async def test_without_auth_the_local_user_keeps_working(client) -> None:
    listed = await client.call_tool("list_interviews", {})
    assert not listed.is_error
    assert {t.name for t in (await client.list_tools()).tools} == {spec.name for spec in ALL_TOOLS}


@pytest.mark.parametrize("name", ["local", "Local", "LOCAL"])
def test_the_local_owner_is_reserved(name) -> None:
    with pytest.raises(AuthConfigError, match=f"the client name '{name}' is reserved for the stdio/CLI user"):
        parse_tokens([f"{name}=some-token-0123456789abc"])
    assert parse_tokens(["locals=some-token-0123456789abc"])[0].name == "locals"


def test_each_tool_needs_exactly_one_scope_read_or_write() -> None:
    assert {spec.name: spec.scope for spec in READ_TOOLS} == dict.fromkeys(
        ("get_interview", "list_interviews", "search", "fetch", "get_batch"), READ_SCOPE)
    assert {spec.scope for spec in WRITE_TOOLS} == {WRITE_SCOPE}
    assert {spec.name for spec in WRITE_TOOLS} == {
        "start_interview", "start_interviews", "send_interview_message", "complete_interview", "cancel_batch"}


@pytest.mark.parametrize(
    ("issuer", "urls"),
    [
        ("https://idp.example.com", ["https://idp.example.com/.well-known/oauth-authorization-server",
                                     "https://idp.example.com/.well-known/openid-configuration"]),
        ("https://tenant.auth0.com/", ["https://tenant.auth0.com/.well-known/oauth-authorization-server",
                                       "https://tenant.auth0.com/.well-known/openid-configuration"]),
        ("https://kc.example.com/realms/team", [
            "https://kc.example.com/.well-known/oauth-authorization-server/realms/team",
            "https://kc.example.com/realms/team/.well-known/openid-configuration"]),
    ],
)
def test_issuer_metadata_locations(issuer, urls) -> None:
    assert metadata_urls(issuer) == urls


@pytest.mark.parametrize(
    ("claims", "scopes"),
    [
        ({"scope": "interviews:read  interviews:write"}, ["interviews:read", "interviews:write"]),
        ({"scp": ["interviews:read", 7]}, ["interviews:read"]),
        ({"scp": "interviews:read"}, ["interviews:read"]),
        ({}, []),
        ({"scope": 3}, []),
    ],
)
def test_scopes_are_read_from_scope_or_scp(claims, scopes) -> None:
    assert token_scopes(claims) == scopes
