"""Session tokens survive the server: start in one process, kill -9 it, relay from the next."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import ROOT, koji_mcp_command, subprocess_env

pytestmark = pytest.mark.anyio


def params(sandbox, state_dir: Path) -> StdioServerParameters:
    command, *args = koji_mcp_command()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url)
    return StdioServerParameters(command=command, args=[*args, "serve", "--state-dir", str(state_dir)],
                                 env=env, cwd=str(ROOT))


def pids_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


async def test_token_comes_back_from_the_ledger_after_a_hard_kill(sandbox, tmp_path) -> None:
    state = tmp_path / "state-restart"
    async with stdio_client(params(sandbox, state), errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            started = await session.call_tool("start_interview", {"respondent": {"display_name": "Kim"}})
            interview_id = started.structured_content["interview_id"]
            [pid] = pids_with(str(state))
            os.kill(pid, signal.SIGKILL)  # no clean shutdown: the ledger must already hold the token
    assert pids_with(str(state)) == []

    async with stdio_client(params(sandbox, state), errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            reply = await session.call_tool("send_interview_message", {"interview_id": interview_id, "content": "Good."})
            listed = await session.call_tool("list_interviews", {})
    assert not reply.is_error, reply.content[0].text
    assert reply.structured_content["interview_status"] == "active"
    assert [i["interview_id"] for i in listed.structured_content["interviews"]] == [interview_id]
    [koji] = sandbox.interviews()
    assert sandbox.requests()[-1]["headers"]["x-session-token"] == koji["session_token"]
