"""Regressions for issues found in code review: races, cancellation, odd Koji bodies, big CSV numbers."""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import anyio
import httpx
import pytest
from mcp import Client

from koji_mcp.interviews.ledger import Ledger
from koji_mcp.koji.models import StartRequest
from koji_mcp.cli.participants import typed
from koji_mcp.sandbox import DEMO_KEY
from koji_mcp.server.app import build_server
from koji_mcp.interviews.services import open_services
from koji_mcp.interviews.start_once import start_one
from tests.conftest import koji_mcp_command, make_settings, subprocess_env

pytestmark = pytest.mark.anyio
START = "/api/v1/interviews/start"


async def test_two_overlapping_batches_never_invite_anyone_twice(sandbox, settings) -> None:
    sandbox.fault(path=START, delay=0.1, times=1000)  # slow Koji: the batches overlap for real
    people = [{"external_id": f"o{i}"} for i in range(10)]
    results = []
    async with Client(build_server(settings), mode="legacy") as c:
        async def batch(delay: float) -> None:
            await anyio.sleep(delay)
            results.append(await c.call_tool("start_interviews", {"respondents": people}))

        async with anyio.create_task_group() as group:
            group.start_soon(batch, 0.0)
            group.start_soon(batch, 0.25)
    started = Counter(r["json"]["respondent"]["external_id"] for r in sandbox.requests() if r["status"] == 201)
    assert started == Counter({f"o{i}": 1 for i in range(10)})
    kinds = Counter(o["outcome"] for r in results for o in r.structured_content["outcomes"])
    # the second batch skips who the first one started, and counts those still in flight as unknown
    assert kinds["started"] == 10 and kinds["skipped"] + kinds["unknown"] == 10
    assert all("in flight" in o["message"] for r in results for o in r.structured_content["outcomes"]
               if o["outcome"] == "unknown")


async def test_a_start_cancelled_while_pacing_sends_nothing_and_leaves_no_row(sandbox, settings) -> None:
    async with open_services(settings) as services:
        services.koji.rate.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0",
                                    "x-ratelimit-reset": str(int(time.time()) + 30)})
        services.koji.pacer.observe(200, {}, None)
        began = time.monotonic()
        with anyio.move_on_after(0.3):
            await start_one(services, "local", StartRequest(), max_wait=60)
        assert time.monotonic() - began < 2
        assert services.ledger.list(limit=10)[1] == 0
    assert sandbox.requests() == []


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


async def test_an_undecodable_body_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
                              content=b"definitely not gzip")

    settings = make_settings("http://koji.test")
    async with open_services(settings, transport=httpx.MockTransport(handler)) as services:
        async with Client(build_server(settings, services), mode="legacy") as c:
            r = await c.call_tool("start_interview", {})
    assert r.is_error
    assert r.content[0].text.startswith("Koji is unavailable or answered badly: Koji's answer could not be decoded")
    assert "Outcome unknown" in r.content[0].text


def test_big_csv_numbers_stay_exact() -> None:
    assert typed("12345678901234567890") == 12345678901234567890
    assert typed("9007199254740993") == 9007199254740993


def test_batch_refuses_an_unwritable_results_path_before_sending(sandbox, tmp_path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("external_id\nu1\n")
    proc = subprocess.run(
        [*koji_mcp_command(), "batch", str(src), "--out", str(tmp_path / "missing" / "out.csv")],
        env=subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path)),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"koji-mcp batch: cannot write results to {tmp_path / 'missing' / 'out.csv'}")
    assert sandbox.requests() == []
    assert Ledger.open(str(tmp_path), sandbox.base_url).list()[1] == 0
