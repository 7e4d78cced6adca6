"""Batch jobs across real processes: SIGKILL mid-job and resume (stdio), owners over streamable HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession
from mcp.client.stdio import stdio_client

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env
from tests.e2e.test_auth_http import ALICE, BOB, as_client
from tests.e2e.test_http import free_port, wait_for_port
from tests.e2e.test_restart import params, pids_with
from tests.test_batch import START, people, starts_by_external_id

pytestmark = pytest.mark.anyio


async def batch_state(session: ClientSession, batch_id: str) -> dict:
    r = await session.call_tool("get_batch", {"batch_id": batch_id})
    assert not r.is_error, r.content[0].text
    return r.structured_content


async def test_a_job_killed_with_sigkill_resumes_by_itself_and_starts_everyone_once(sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state-jobs"
    sandbox.fault(method="POST", path=START, delay=0.25, times=10_000)  # ~16 starts/s with 4 workers
    async with stdio_client(params(sandbox, state), errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            r = await session.call_tool("start_interviews", {"respondents": people(60), "background": True})
            batch_id = r.structured_content["batch_id"]
            with anyio.fail_after(20):
                while (await batch_state(session, batch_id))["counts"]["started"] < 12:
                    await anyio.sleep(0.05)
            [pid] = pids_with(str(state))
            os.kill(pid, signal.SIGKILL)  # mid-job: some starts are on the wire
    assert pids_with(str(state)) == []

    async with stdio_client(params(sandbox, state), errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            with anyio.fail_after(40):
                while (done := await batch_state(session, batch_id))["status"] != "done":
                    await anyio.sleep(0.2)
    counts = done["counts"]
    assert done["resumed"] == 1
    assert counts["pending"] == counts["failed"] == counts["cancelled"] == 0
    assert counts["started"] + counts["unknown"] == 60
    sent = starts_by_external_id(sandbox.base_url)
    assert max(sent.values()) == 1  # nobody started twice
    started = [o for o in done["outcomes"] if o["outcome"] == "started"]
    assert len(started) == min(counts["started"], 100)
    assert all(sent[o["external_id"]] == 1 for o in started)
    unknown = [o for o in done["outcomes"] if o["outcome"] == "unknown"]
    assert all("outcome unknown" in o["error"] for o in unknown)  # in flight at the kill: never resent


@pytest.fixture
def http_server(sandbox, tmp_path):
    port = free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path),
                         KOJI_MCP_AUTH_TOKEN=f"alice={ALICE},bob={BOB}")
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--transport", "streamable-http", "--port", str(port)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


async def test_over_http_a_job_belongs_to_the_client_that_started_it(http_server, sandbox) -> None:
    async with as_client(http_server, ALICE) as alice, as_client(http_server, BOB) as bob:
        r = await alice.call_tool("start_interviews", {"respondents": people(5), "background": True})
        batch_id = r.structured_content["batch_id"]
        for name, args in (("get_batch", {"batch_id": batch_id}), ("cancel_batch", {"batch_id": batch_id})):
            refused = await bob.call_tool(name, args)
            assert refused.is_error and refused.content[0].text == (
                f"Unknown batch_id {batch_id!r}: no batch with this id was started by you on this server.")
        with pytest.raises(Exception, match="unknown batch_id"):
            await bob.read_resource(f"koji://batches/{batch_id}")
        with anyio.fail_after(20):
            while (state := (await alice.call_tool("get_batch", {"batch_id": batch_id})).structured_content)[
                    "status"] != "done":
                await anyio.sleep(0.1)
    assert state["counts"]["started"] == 5
    assert starts_by_external_id(sandbox.base_url) == Counter({f"p{i}": 1 for i in range(5)})
