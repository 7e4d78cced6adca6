"""The SDK internals koji-mcp relies on are still where it expects them (issue 11, item 13).

mcp 2.3 offers no public API for these; if an SDK upgrade moves one, these tests fail with a message
saying which, instead of the server silently losing a feature (or, for the auth context, treating
every HTTP client as the local user).
"""

from __future__ import annotations

import importlib
import inspect

import pytest
from mcp.server.lowlevel import Server
from mcp.server.mcpserver import MCPServer

from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import authenticated_token
from koji_mcp.server.sdk import SDKInternalMoved, lowlevel_server
from tests.conftest import make_settings


def test_the_lowlevel_server_is_reachable_and_takes_request_handlers() -> None:
    from koji_mcp.server.app import build_server

    server = build_server(make_settings("http://127.0.0.1:9"))
    lowlevel = lowlevel_server(server)
    assert isinstance(lowlevel, Server)
    for name in ("add_request_handler", "run", "create_initialization_options"):
        assert callable(getattr(lowlevel, name, None)), f"mcp.server.lowlevel.Server.{name} moved"


def test_a_moved_lowlevel_server_fails_loudly() -> None:
    class Moved(MCPServer):
        pass

    server = Moved("x")
    del server._lowlevel_server
    with pytest.raises(SDKInternalMoved, match="_lowlevel_server"):
        lowlevel_server(server)


def test_our_stdio_loop_mirrors_the_sdks() -> None:
    """serve_stdio copies MCPServer.run_stdio_async; if the SDK's changes, ours must be looked at."""
    source = inspect.getsource(MCPServer.run_stdio_async)
    assert "stdio_server()" in source and "_lowlevel_server.run(" in source, source
    assert "create_initialization_options()" in source, source


def test_the_auth_context_import_is_where_we_use_it() -> None:
    module = importlib.import_module("mcp.server.auth.middleware.auth_context")
    assert callable(module.get_access_token)
    assert authenticated_token() is None  # outside an HTTP request
    assert current_owner() == "local"
