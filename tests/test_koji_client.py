"""KojiClient against the real sandbox: typed errors that say what a status means, and permission probes.

The tools read these types (SessionGone, Forbidden, InterviewEnded, ...) and never a status code, so
each mapping is pinned here, per endpoint, with Koji's own answers or the sandbox's faults.
"""

from __future__ import annotations

import pytest

from koji_mcp.koji.client import KojiClient
from koji_mcp.koji.errors import (
    COMPLETE,
    MESSAGE,
    READ,
    START,
    BadRequest,
    BriefNotPublished,
    Conflict,
    Forbidden,
    InterviewEnded,
    InterviewNotFound,
    KojiAPIError,
    KojiProtocolError,
    NotKoji,
    PaymentRequired,
    ProjectNotFound,
    Redirected,
    SessionGone,
    Unauthorized,
)
from koji_mcp.koji.models import StartRequest
from koji_mcp.sandbox import DELETED_PROJECT_KEY, DRAFT_PROJECT_KEY, NO_PERMISSION_KEY, REVOKED_KEY, START_ONLY_KEY
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio
START_PATH = "/api/v1/interviews/start"


def client_for(sandbox, key: str | None = None) -> KojiClient:
    settings = make_settings(sandbox.base_url)
    return KojiClient(settings, api_key=key) if key else KojiClient(settings)


@pytest.mark.parametrize(("key", "kind", "permission"), [
    (REVOKED_KEY, Unauthorized, None),
    (NO_PERMISSION_KEY, Forbidden, "interview:start"),
    (DELETED_PROJECT_KEY, ProjectNotFound, None),
    (DRAFT_PROJECT_KEY, BriefNotPublished, None),
])
async def test_start_errors_are_typed(sandbox, key: str, kind: type, permission: str | None) -> None:
    client = client_for(sandbox, key)
    try:
        with pytest.raises(kind) as caught:
            await client.start_interview(StartRequest())
    finally:
        await client.aclose()
    assert type(caught.value) is kind and caught.value.outcome == "rejected"
    if permission:
        assert caught.value.permission == permission


async def test_session_errors_are_typed(sandbox) -> None:
    client = client_for(sandbox)
    try:
        started = await client.start_interview(StartRequest())
        iid = started.interview_id
        with pytest.raises(SessionGone):
            await client.send_message(iid, "st_wrong_token_0000", "hi")
        with pytest.raises(InterviewNotFound):
            await client.get_interview("00000000-0000-0000-0000-000000000001")
        with pytest.raises(BadRequest):
            await client.complete_interview(iid, started.session_token, reason="bogus", feedback=None)
    finally:
        await client.aclose()


@pytest.mark.parametrize(("status", "code", "endpoint_path", "kind"), [
    (409, "conflict", "message", InterviewEnded),
    (409, "conflict", "complete", Conflict),
    (402, "payment_required", "start", PaymentRequired),
    (418, "teapot", "start", KojiAPIError),
])
async def test_statuses_mean_what_the_endpoint_says(sandbox, status, code, endpoint_path, kind) -> None:
    client = client_for(sandbox)
    try:
        started = await client.start_interview(StartRequest())
        paths = {"start": START_PATH, "message": f"/api/v1/interviews/{started.interview_id}/message",
                 "complete": "/api/interview/complete"}
        sandbox.fault(method="POST", path=paths[endpoint_path], status=status, json={"error": code, "message": "m"})
        with pytest.raises(KojiAPIError) as caught:
            if endpoint_path == "start":
                await client.start_interview(StartRequest())
            elif endpoint_path == "message":
                await client.send_message(started.interview_id, started.session_token, "hi")
            else:
                await client.complete_interview(started.interview_id, started.session_token, reason="manual",
                                                feedback=None)
    finally:
        await client.aclose()
    assert type(caught.value) is kind and (caught.value.status, caught.value.code) == (status, code)


async def test_answers_without_kojis_body_and_redirects(sandbox) -> None:
    client = client_for(sandbox)
    try:
        sandbox.fault(method="POST", path=START_PATH, status=400, body="nope", content_type="text/plain")
        with pytest.raises(NotKoji):
            await client.start_interview(StartRequest())
        sandbox.fault(method="POST", path=START_PATH, status=302, body="", headers={"Location": "https://else.example"})
        with pytest.raises(Redirected) as caught:
            await client.start_interview(StartRequest())
    finally:
        await client.aclose()
    assert caught.value.location == "https://else.example"


async def test_probes_spend_nothing_and_tell_a_missing_permission(sandbox) -> None:
    full, start_only = client_for(sandbox), client_for(sandbox, START_ONLY_KEY)
    try:
        for endpoint in (START, MESSAGE, COMPLETE, READ):
            await full.probe(endpoint)  # granted: returns
        await start_only.probe(START)
        for endpoint in (MESSAGE, COMPLETE, READ):
            with pytest.raises(Forbidden) as caught:
                await start_only.probe(endpoint)
            assert caught.value.permission == endpoint.permission
    finally:
        await full.aclose()
        await start_only.aclose()
    assert sandbox.interviews() == []
    assert [r["status"] for r in sandbox.requests()] == [400, 400, 400, 404, 400, 403, 403, 403]


async def test_a_probe_koji_accepts_is_reported(sandbox) -> None:
    sandbox.fault(method="POST", path=START_PATH, status=201, json={"interview_id": "x"})
    client = client_for(sandbox)
    try:
        with pytest.raises(KojiProtocolError, match="accepted an invalid probe request"):
            await client.probe(START)
    finally:
        await client.aclose()
