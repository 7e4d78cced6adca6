"""The real `koji-mcp` command as a stdio subprocess, against a real sandbox on a free port."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import ROOT, koji_mcp_command, subprocess_env

pytestmark = pytest.mark.anyio


async def test_stdio_subprocess_starts_an_interview(sandbox, tmp_path) -> None:
    command, *args = koji_mcp_command()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path))
    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(ROOT))
    errlog = (tmp_path / "stderr.log").open("w+")
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "koji-mcp"
            tools = await session.list_tools()
            assert "start_interview" in [t.name for t in tools.tools]
            result = await session.call_tool("start_interview", {"respondent": {"display_name": "Ana"}, "locale": "es"})
    assert not result.is_error, result.content[0].text
    [koji] = sandbox.interviews()
    assert result.structured_content["interview_id"] == koji["interview_id"]
    errlog.seek(0)
    log = errlog.read()
    assert "POST /api/v1/interviews/start -> 201" in log
    assert DEMO_KEY not in log and koji["session_token"] not in log


def test_missing_key_exits_2_with_one_line(tmp_path) -> None:
    proc = subprocess.run(
        [*koji_mcp_command(), "serve"], env=subprocess_env(KOJI_MCP_STATE_DIR=str(tmp_path)),
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("koji-mcp: KOJI_API_KEY is not set")


def test_help_explains_every_flag() -> None:
    proc = subprocess.run([*koji_mcp_command(), "--help"], capture_output=True, text=True, timeout=30,
                          env=subprocess_env())
    assert proc.returncode == 0
    for flag in ["--transport", "--host", "--port", "--sandbox", "--base-url", "--timeout", "--state-dir",
                 "--read-only", "--tools", "--allowed-host", "--allowed-origin", "--log-level",
                 "--brief", "--rate-limit", "--analysis-delay", "koji-mcp demo", "KOJI_API_KEY"]:
        assert flag in proc.stdout, flag


def test_unknown_tool_name_exits_2_listing_valid_ones(tmp_path) -> None:
    proc = subprocess.run(
        [*koji_mcp_command(), "serve", "--sandbox", "--tools", "start_interview,nope"],
        env=subprocess_env(KOJI_MCP_STATE_DIR=str(tmp_path)), capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "unknown tool name(s): nope; valid names: start_interview, start_interviews, send_interview_message, complete_interview, cancel_batch, get_interview, list_interviews, search, fetch, get_batch" in proc.stderr


def test_module_entry_point_matches_console_script() -> None:
    proc = subprocess.run([sys.executable, "-m", "koji_mcp", "--version"], capture_output=True, text=True,
                          timeout=30, env=subprocess_env())
    assert proc.returncode == 0 and proc.stdout.startswith("koji-mcp ")


async def test_serve_sandbox_runs_an_in_process_sandbox_without_touching_stdout(tmp_path) -> None:
    """`koji-mcp serve --sandbox`: no key, no account; uvicorn must not write a byte to stdout."""
    command, *args = koji_mcp_command()
    params = StdioServerParameters(command=command, args=[*args, "serve", "--sandbox", "--state-dir", ":memory:"],
                                   env=subprocess_env(), cwd=str(ROOT))
    errlog = (tmp_path / "stderr.log").open("w+")
    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            started = await session.call_tool("start_interview", {"respondent": {"display_name": "Sam"}})
            reply = await session.call_tool(
                "send_interview_message",
                {"interview_id": started.structured_content["interview_id"], "content": "It went well."})
    assert not started.is_error and started.structured_content["initial_message"].startswith("Hi Sam")
    assert not reply.is_error and reply.structured_content["interview_status"] == "active"
    errlog.seek(0)
    assert "in-process Koji sandbox at http://127.0.0.1:" in errlog.read()
