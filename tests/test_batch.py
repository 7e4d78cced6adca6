"""Batch invitations: the start_interviews tool through the real MCP client, against the sandbox."""

from __future__ import annotations

import time
from collections import Counter

import anyio
import httpx
import pytest
from mcp import Client

from koji_mcp.sandbox import SandboxConfig, SandboxServer
from koji_mcp.server.app import build_server
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio
START = "/api/v1/interviews/start"


def people(n: int, prefix: str = "p") -> list[dict]:
    return [{"external_id": f"{prefix}{i}", "display_name": f"Person {i}", "metadata": {"i": i}} for i in range(n)]


def starts_by_external_id(base_url: str) -> Counter:
    log = httpx.get(f"{base_url}/_sandbox/requests").json()["requests"]
    return Counter(((r["json"] or {}).get("respondent") or {}).get("external_id") for r in log
                   if r["path"] == START and r["status"] == 201)


async def test_batch_starts_each_once_with_progress(legacy_client: Client, sandbox) -> None:
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress, total, message) -> None:
        seen.append((progress, total, message))

    r = await legacy_client.call_tool("start_interviews", {"respondents": people(6), "mode": "text", "locale": "en"},
                                      progress_callback=on_progress)
    assert not r.is_error, r.content[0].text
    assert r.structured_content["counts"] == {"started": 6, "skipped": 0, "failed": 0, "unknown": 0,
                                              "would_start": 0, "not_reached": 0}
    assert [o["row"] for o in r.structured_content["outcomes"]] == [1, 2, 3, 4, 5, 6]
    assert sorted(p for p, _, _ in seen) == [1, 2, 3, 4, 5, 6] and {t for _, t, _ in seen} == {6}
    assert {m for _, _, m in seen} == {f"p{i}: started" for i in range(6)}
    assert r.content[0].text.startswith("6 respondent(s): 6 started.")
    assert starts_by_external_id(sandbox.base_url) == Counter({f"p{i}": 1 for i in range(6)})
    assert all(req["json"]["mode"] == "text" and req["json"]["locale"] == "en" for req in sandbox.requests())


async def test_rerun_skips_everyone_already_invited_unless_forced(legacy_client: Client, sandbox) -> None:
    first = await legacy_client.call_tool("start_interviews", {"respondents": people(3)})
    ids = {o["external_id"]: o["interview_id"] for o in first.structured_content["outcomes"]}
    again = await legacy_client.call_tool("start_interviews", {"respondents": people(4)})
    outcomes = again.structured_content["outcomes"]
    assert [o["outcome"] for o in outcomes] == ["skipped"] * 3 + ["started"]
    assert [o["interview_id"] for o in outcomes[:3]] == [ids["p0"], ids["p1"], ids["p2"]]
    assert outcomes[0]["message"] == "already invited (status active)"
    forced = await legacy_client.call_tool("start_interviews", {"respondents": people(1), "force": True})
    assert forced.structured_content["counts"]["started"] == 1
    assert starts_by_external_id(sandbox.base_url)["p0"] == 2


async def test_dry_run_sends_nothing(legacy_client: Client, sandbox) -> None:
    await legacy_client.call_tool("start_interviews", {"respondents": people(1)})
    sandbox.http.delete("/_sandbox/requests")
    r = await legacy_client.call_tool("start_interviews", {"respondents": people(3), "dry_run": True})
    assert [o["outcome"] for o in r.structured_content["outcomes"]] == ["skipped", "would_start", "would_start"]
    assert r.content[0].text.startswith("Dry run, nothing sent. 3 respondent(s): 1 skipped, 2 would start.")
    assert sandbox.requests() == []


async def test_mixed_outcomes_in_one_batch(legacy_client: Client, sandbox) -> None:
    sandbox.fault(path=START, status=400, json={"error": "invalid_request", "message": "bad respondent"})
    sandbox.fault(path=START, status=502, body="bad gateway", content_type="text/plain")
    batch = people(5) + [{"external_id": "p1"}, {"display_name": "No id"}]
    r = await legacy_client.call_tool("start_interviews", {"respondents": batch})
    counts = r.structured_content["counts"]
    assert counts == {"started": 4, "skipped": 1, "failed": 1, "unknown": 1, "would_start": 0, "not_reached": 0}
    by_kind = {o["outcome"]: o for o in r.structured_content["outcomes"]}
    assert by_kind["failed"]["error_code"] == "invalid_request" and by_kind["failed"]["message"] == "bad respondent"
    assert by_kind["unknown"]["interview_id"].startswith("unknown-")
    assert by_kind["skipped"]["message"] == "duplicate of row 2 in this batch"
    text = r.content[0].text
    assert "Unknown outcomes may have started (and spent credits)" in text
    assert "Failed respondents were not started" in text
    # the failed one can simply be retried; the unknown one is not resent, and still counts as unknown
    retry = await legacy_client.call_tool("start_interviews", {"respondents": people(5)})
    kinds = Counter(o["outcome"] for o in retry.structured_content["outcomes"])
    assert kinds == Counter({"skipped": 3, "started": 1, "unknown": 1})
    unknown_row = next(o for o in retry.structured_content["outcomes"] if o["outcome"] == "unknown")
    assert unknown_row["interview_id"] == by_kind["unknown"]["interview_id"]
    assert unknown_row["message"].startswith("an earlier start's outcome is unknown: check Koji, then settle it with "
                                             f"`koji-mcp ledger resolve {unknown_row['interview_id']} --started")
    assert "Unknown outcomes may have started (and spent credits)" in retry.content[0].text


async def test_batch_stops_on_errors_that_would_fail_every_row(sandbox) -> None:
    from koji_mcp.sandbox import DRAFT_PROJECT_KEY

    async with Client(build_server(make_settings(sandbox.base_url, api_key=DRAFT_PROJECT_KEY)), mode="legacy") as c:
        r = await c.call_tool("start_interviews", {"respondents": people(20)})
    counts = r.structured_content["counts"]
    assert counts["failed"] >= 1 and counts["failed"] <= 4 and counts["not_reached"] == 20 - counts["failed"]
    assert "were not reached: the batch stopped on an error that would fail them too" in r.content[0].text


async def test_batch_validates_every_respondent_first(legacy_client: Client, sandbox) -> None:
    bad = people(2) + [{"external_id": "x", "metadata": {"nested": {"a": 1}}}]
    r = await legacy_client.call_tool("start_interviews", {"respondents": bad})
    assert r.is_error and "- respondents.2.metadata: must be flat" in r.content[0].text
    too_many = await legacy_client.call_tool("start_interviews", {"respondents": [{}] * 501})
    assert too_many.is_error and "- respondents: List should have at most 500 items" in too_many.content[0].text
    assert sandbox.requests() == []


async def test_pacing_never_exceeds_the_limit(tmp_path) -> None:
    """Sandbox: 10 requests per 2 s window. The pacer spreads 14 starts out and never meets a 429."""
    with SandboxServer(SandboxConfig(rate_limit=10, window_seconds=2.0)) as server:
        settings = make_settings(server.base_url, state_dir=str(tmp_path), rate_limit_window=2.0)
        began = time.monotonic()
        async with Client(build_server(settings), mode="legacy") as c:
            r = await c.call_tool("start_interviews", {"respondents": people(14)})
        elapsed = time.monotonic() - began
        statuses = [x["status"] for x in httpx.get(f"{server.base_url}/_sandbox/requests").json()["requests"]]
    assert r.structured_content["counts"]["started"] == 14
    assert statuses == [201] * 14
    assert elapsed >= 12 * 0.2 * 0.9  # 14 starts at 0.2 s spacing, the first sent before the limit is known


async def test_injected_429s_are_waited_out_and_retried(legacy_client: Client, sandbox) -> None:
    for _ in range(2):
        sandbox.fault(path=START, status=429, headers={"Retry-After": "1"},
                      json={"error": "rate_limited", "message": "Rate limit exceeded."})
    r = await legacy_client.call_tool("start_interviews", {"respondents": people(5)})
    assert r.structured_content["counts"]["started"] == 5
    assert starts_by_external_id(sandbox.base_url) == Counter({f"p{i}": 1 for i in range(5)})
    assert [x["status"] for x in sandbox.requests()].count(429) == 2


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
    # the second batch skips who the first one started, waiting for the starts still in flight to end
    assert kinds == Counter({"started": 10, "skipped": 10})
