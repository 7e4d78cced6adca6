"""Background batch jobs (interviews/jobs.py) through the real MCP client, against the real sandbox."""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from typing import Any

import anyio
import httpx
import mcp.types as types
import pytest
from mcp import Client

from koji_mcp.server.app import build_server
from tests.conftest import make_settings
from tests.test_batch import START, people, starts_by_external_id

pytestmark = pytest.mark.anyio


async def wait_for(client: Client, batch_id: str, *, until: tuple[str, ...] = ("done", "cancelled", "failed"),
                   timeout: float = 30) -> dict[str, Any]:
    with anyio.fail_after(timeout):
        while True:
            r = await client.call_tool("get_batch", {"batch_id": batch_id})
            assert not r.is_error, r.content[0].text
            if r.structured_content["status"] in until:
                return r.structured_content
            await anyio.sleep(0.1)


def start_count(base_url: str) -> int:
    log = httpx.get(f"{base_url}/_sandbox/requests").json()["requests"]
    return sum(1 for r in log if r["path"] == START)


async def test_a_background_job_returns_at_once_and_pages_its_outcomes(client: Client, sandbox) -> None:
    began = time.monotonic()
    r = await client.call_tool("start_interviews", {"respondents": people(150), "background": True})
    assert time.monotonic() - began < 2
    assert not r.is_error, r.content[0].text
    job = r.structured_content
    assert job["status"] == "running" and job["batch_id"].startswith("batch_")
    assert set(job["counts"]) == {"started", "skipped", "failed", "unknown", "pending", "cancelled"}
    assert job["counts"]["pending"] + job["counts"]["started"] == 150 and isinstance(job["eta_seconds"], int)
    assert f'get_batch(batch_id="{job["batch_id"]}")' in r.content[0].text

    done = await wait_for(client, job["batch_id"])
    assert done["status"] == "done" and done["eta_seconds"] is None
    assert done["counts"] == {"started": 150, "skipped": 0, "failed": 0, "unknown": 0, "pending": 0, "cancelled": 0}
    assert [o["row"] for o in done["outcomes"]] == list(range(1, 101)) and done["next_cursor"] == "100"
    assert all(o["outcome"] == "started" and o["interview_id"] for o in done["outcomes"])
    page2 = await client.call_tool("get_batch", {"batch_id": job["batch_id"], "cursor": "100"})
    assert [o["row"] for o in page2.structured_content["outcomes"]] == list(range(101, 151))
    assert page2.structured_content["next_cursor"] is None
    assert starts_by_external_id(sandbox.base_url) == Counter({f"p{i}": 1 for i in range(150)})


async def test_planning_reports_skips_at_once_and_small_batches_stay_in_the_call(client: Client, sandbox) -> None:
    small = await client.call_tool("start_interviews", {"respondents": people(2)})
    assert "batch_id" not in small.structured_content and small.structured_content["counts"]["started"] == 2
    crowd = [*people(3), {"external_id": "p2"}]
    r = await client.call_tool("start_interviews", {"respondents": crowd, "background": True})
    job = r.structured_content
    assert [(o["row"], o["outcome"]) for o in job["outcomes"]] == [(1, "skipped"), (2, "skipped"), (4, "skipped")]
    assert "duplicate of row 3" in r.content[0].text and "already invited" in r.content[0].text
    done = await wait_for(client, job["batch_id"])
    assert done["counts"]["started"] == 1 and done["counts"]["skipped"] == 3


async def test_cancel_mid_run_sends_nothing_more_and_is_idempotent(client: Client, sandbox) -> None:
    sandbox.fault(method="POST", path=START, delay=0.3, times=1000)
    r = await client.call_tool("start_interviews", {"respondents": people(40), "background": True})
    batch_id = r.structured_content["batch_id"]
    with anyio.fail_after(10):
        while (await client.call_tool("get_batch", {"batch_id": batch_id})).structured_content["counts"]["started"] < 2:
            await anyio.sleep(0.05)
    cancelled = await client.call_tool("cancel_batch", {"batch_id": batch_id})
    sent_at_return = start_count(sandbox.base_url)
    assert not cancelled.is_error and cancelled.structured_content["status"] == "cancelled"
    counts = cancelled.structured_content["counts"]
    assert counts["pending"] == 0 and counts["cancelled"] > 0
    assert counts["started"] + counts["cancelled"] + counts["unknown"] == 40
    assert counts["started"] == sent_at_return  # every start sent before the cancel returned was recorded
    await anyio.sleep(1.0)
    assert start_count(sandbox.base_url) == sent_at_return
    again = await client.call_tool("cancel_batch", {"batch_id": batch_id})
    assert "already finished (cancelled); nothing changed" in again.content[0].text
    assert again.structured_content["counts"] == counts


async def test_a_revoked_key_fails_the_job_with_the_reason_and_leaves_pending_rows(client: Client, sandbox) -> None:
    sandbox.fault(method="POST", path=START, delay=0.2, times=3)
    r = await client.call_tool("start_interviews", {"respondents": people(20), "background": True})
    batch_id = r.structured_content["batch_id"]
    with anyio.fail_after(10):
        while (await client.call_tool("get_batch", {"batch_id": batch_id})).structured_content["counts"]["started"] < 1:
            await anyio.sleep(0.02)
    sandbox.fault(method="POST", path=START, status=401, times=1000,
                  json={"error": "invalid_api_key", "message": "The API key was revoked."})
    done = await wait_for(client, batch_id)
    assert done["status"] == "failed"
    assert done["error"] == "invalid_api_key: The API key was revoked."
    rejected = [req for req in sandbox.requests() if req["path"] == START and req["status"] == 401]
    assert len(rejected) == done["counts"]["failed"] >= 1  # nothing retried
    assert done["counts"]["pending"] > 0 and done["counts"]["cancelled"] == 0
    assert done["counts"]["started"] + done["counts"]["failed"] + done["counts"]["pending"] == 20


async def test_unknown_and_malformed_batch_ids(client: Client, sandbox) -> None:
    r = await client.call_tool("get_batch", {"batch_id": "batch_" + "0" * 20})
    assert r.is_error and r.content[0].text.startswith("Unknown batch_id 'batch_00000000000000000000'")
    bad = await client.call_tool("cancel_batch", {"batch_id": "../etc"})
    assert bad.is_error and "batch_id" in bad.content[0].text


async def test_the_batch_resource_matches_get_batch_and_subscribers_hear_updates(settings, sandbox) -> None:
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))

    sandbox.fault(method="POST", path=START, delay=0.1, times=1000)
    async with Client(build_server(settings), mode="legacy", message_handler=on_message) as client:
        r = await client.call_tool("start_interviews", {"respondents": people(25), "background": True})
        uri = f"koji://batches/{r.structured_content['batch_id']}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            await client.subscribe_resource(uri)
        done = await wait_for(client, r.structured_content["batch_id"])
        await anyio.sleep(0.3)
        read = json.loads((await client.read_resource(uri)).contents[0].text)
        assert {k: read[k] for k in ("batch_id", "status", "counts", "outcomes")} == {
            k: done[k] for k in ("batch_id", "status", "counts", "outcomes")}
        assert 2 <= updates.count(uri) <= 10  # as the job advanced, at most about once a second


async def test_owners_do_not_see_each_others_batches(sandbox, tmp_path) -> None:
    """Two owners on one ledger: the second gets 'unknown batch_id' exactly as for an unknown id."""
    from koji_mcp.interviews.jobs import run_jobs
    from koji_mcp.interviews.services import open_services

    settings = make_settings(sandbox.base_url, state_dir=str(tmp_path / "state"))
    async with open_services(settings) as services, run_jobs(services):
        assert services.jobs is not None
        batch_id = services.jobs.submit("alice", [(p, None) for p in _respondents(2)], mode=None, locale=None,
                                        force=False)
        from koji_mcp.interviews.jobs import UnknownBatch

        with pytest.raises(UnknownBatch):
            services.jobs.document(batch_id, "bob")
        with pytest.raises(UnknownBatch):
            await services.jobs.cancel(batch_id, "bob")
        assert services.jobs.document(batch_id, "alice")["batch_id"] == batch_id


def _respondents(n: int) -> list[Any]:
    from koji_mcp.koji.models import Respondent

    return [Respondent(external_id=f"o{i}") for i in range(n)]



async def test_on_2026_07_28_listeners_hear_the_batch_advance(settings, sandbox) -> None:
    sandbox.fault(method="POST", path=START, delay=0.1, times=1000)
    async with Client(build_server(settings), mode="auto") as client:
        r = await client.call_tool("start_interviews", {"respondents": people(20), "background": True})
        uri = f"koji://batches/{r.structured_content['batch_id']}"
        heard = 0
        async with client.listen(resource_subscriptions=[uri]) as sub:
            with anyio.move_on_after(10):
                async for event in sub:
                    assert getattr(event, "uri", uri) == uri
                    heard += 1
                    state = await client.call_tool("get_batch", {"batch_id": r.structured_content["batch_id"]})
                    if state.structured_content["status"] == "done":
                        break
        assert heard >= 1
        assert state.structured_content["status"] == "done"


async def test_a_job_whose_lease_was_taken_over_sends_nothing_more(settings, sandbox) -> None:
    """Exactly once across processes: sends check the lease in the same transaction as the reservation."""
    from koji_mcp.interviews.ledger import Ledger

    sandbox.fault(method="POST", path=START, delay=0.3, times=1000)
    async with Client(build_server(settings), mode="legacy") as client:
        r = await client.call_tool("start_interviews", {"respondents": people(30), "background": True})
        batch_id = r.structured_content["batch_id"]
        with anyio.fail_after(10):
            while (await client.call_tool("get_batch", {"batch_id": batch_id})).structured_content["counts"][
                    "started"] < 2:
                await anyio.sleep(0.05)
        peer = Ledger.open(settings.state_dir, sandbox.base_url, database_url=settings.ledger_database_url)
        with peer._tx() as db:  # another replica took the job over (our lease lapsed)
            db.execute("UPDATE batches SET lease_holder = 'elsewhere:1:peer', lease_until = ? WHERE batch_id = ?",
                       (time.time() + 600, batch_id))
        await anyio.sleep(1.0)  # starts already on the wire finish
        sent = start_count(sandbox.base_url)
        await anyio.sleep(1.5)
        assert start_count(sandbox.base_url) == sent < 30
        with peer._read() as db:
            holder, status = db.execute("SELECT lease_holder, status FROM batches WHERE batch_id = ?",
                                        (batch_id,)).fetchone()
        peer.close()
        assert (holder, status) == ("elsewhere:1:peer", "running")  # its status is not ours to overwrite


async def test_an_interrupted_job_is_resumed_only_by_a_server_that_may_start(settings, sandbox) -> None:
    from koji_mcp.interviews.jobs import JobStore, run_jobs
    from koji_mcp.interviews.services import open_services

    sandbox.fault(method="POST", path=START, delay=0.2, times=1000)
    async with open_services(settings) as services, run_jobs(services) as jobs:
        batch_id = jobs.submit("local", [(p, None) for p in _respondents(40)], mode=None, locale=None, force=False)
        await anyio.sleep(0.5)
    # the server closed mid-job: interrupted, with rows left to start
    async with open_services(settings) as services:
        store = JobStore(services.ledger)
        assert store.job(batch_id)["status"] == "interrupted" and store.counts(batch_id)["pending"] > 0
    sent = start_count(sandbox.base_url)
    read_only = settings.model_copy(update={"read_only": True})
    async with open_services(read_only) as services, run_jobs(services) as jobs:
        await anyio.sleep(1.0)
        assert jobs.document(batch_id, "local")["status"] == "interrupted"
    assert start_count(sandbox.base_url) == sent  # a read-only server never sends a start
    async with open_services(settings) as services, run_jobs(services) as jobs:
        with anyio.fail_after(20):
            while (done := jobs.document(batch_id, "local"))["status"] == "running" or done["counts"]["pending"]:
                await anyio.sleep(0.1)
    assert done["status"] == "done" and done["resumed"] >= 1
    assert done["counts"]["started"] + done["counts"]["unknown"] == 40
    assert max(starts_by_external_id(sandbox.base_url).values()) == 1


async def test_get_batch_always_has_next_cursor_and_eta_and_made_up_ids_read_as_unknown(client, sandbox) -> None:
    r = await client.call_tool("start_interviews", {"respondents": people(3), "background": True})
    done = await wait_for(client, r.structured_content["batch_id"])
    assert {"batch_id", "status", "counts", "outcomes", "next_cursor", "eta_seconds"} <= set(done)
    assert done["next_cursor"] is None and done["eta_seconds"] is None
    for made_up in ("nope", "batch_" + "f" * 20):
        unknown = await client.call_tool("get_batch", {"batch_id": made_up})
        assert unknown.is_error and unknown.content[0].text == (
            f"Unknown batch_id {made_up!r}: no batch with this id was started by you on this server.")
