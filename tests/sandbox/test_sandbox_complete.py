"""Completing interviews on both routes, idempotency, analysis readiness, disabled routes."""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import pytest

from koji_mcp.sandbox import DEMO_KEY

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def _complete(http: httpx.Client, iid: str, token: str | None, route: str = "current", **body):
    headers = dict(AUTH)
    if token is not None:
        headers["X-Session-Token"] = token
    if route == "current":
        return http.post("/api/interview/complete", json={"interview_id": iid, **body}, headers=headers)
    return http.post(f"/api/v1/interviews/{iid}/complete", json=body, headers=headers)


def _answer_all(http, started, answers):
    for text, _ in answers:
        r = http.post(f"/api/v1/interviews/{started['interview_id']}/message", json={"content": text},
                        headers={**AUTH, "X-Session-Token": started["session_token"]})
        assert r.status_code == 200


@pytest.mark.parametrize("route", ["current", "legacy"])
def test_complete_body_and_idempotency(http, start, route):
    s = start()
    r1 = _complete(http, s["interview_id"], s["session_token"], route, reason="respondent_left",
                   feedback={"rating": 5, "comment": "nice"})
    assert r1.status_code == 200
    body = r1.json()
    assert set(body) == {"interview_id", "status", "completion_reason", "completed_at", "analysis_status"}
    assert body["interview_id"] == s["interview_id"]
    assert (body["status"], body["completion_reason"], body["analysis_status"]) == (
        "completed", "respondent_left", "pending")
    assert body["completed_at"].endswith("Z")
    datetime.fromisoformat(body["completed_at"].replace("Z", "+00:00"))
    time.sleep(0.01)
    # idempotent on both routes, with a different reason: exactly the same body
    r2 = _complete(http, s["interview_id"], s["session_token"], "current", reason="timeout")
    r3 = _complete(http, s["interview_id"], s["session_token"], "legacy")
    assert r2.status_code == r3.status_code == 200
    assert r1.content == r2.content == r3.content
    got = http.get(f"/api/v1/interviews/{s['interview_id']}", headers=AUTH).json()
    assert got["status"] == "completed" and got["feedback"] == {"rating": 5, "comment": "nice"}
    assert got["completed_at"] == body["completed_at"]


def test_complete_defaults_to_manual(http, start):
    s = start()
    assert _complete(http, s["interview_id"], s["session_token"]).json()["completion_reason"] == "manual"


def test_complete_errors(http, start, api_error):
    s = start()
    iid, token = s["interview_id"], s["session_token"]
    assert "'reason'" in api_error(_complete(http, iid, token, reason="bored"), 400, "invalid_request")
    assert "'feedback.x'" in api_error(_complete(http, iid, token, feedback={"x": {"y": 1}}), 400,
                                       "invalid_request")
    assert "'feedback'" in api_error(_complete(http, iid, token, feedback=[1]), 400, "invalid_request")
    r = http.post("/api/interview/complete", json={}, headers={**AUTH, "X-Session-Token": token})
    assert "'interview_id' is required" in api_error(r, 400, "invalid_request")
    r = http.post("/api/interview/complete", json={"interview_id": 7}, headers={**AUTH, "X-Session-Token": token})
    api_error(r, 400, "invalid_request")
    r = http.post(f"/api/v1/interviews/{iid}/complete", json={"interview_id": "other"},
                    headers={**AUTH, "X-Session-Token": token})
    assert "does not match" in api_error(r, 400, "invalid_request")
    api_error(_complete(http, iid, None), 401, "invalid_session_token")
    api_error(_complete(http, iid, "st_live_nope", "legacy"), 401, "invalid_session_token")
    api_error(_complete(http, "no-such-interview", token), 404, "not_found")
    # nothing above completed it
    assert http.get(f"/api/v1/interviews/{iid}", headers=AUTH).json()["status"] == "active"
    # token stays valid for complete after completion; a wrong one still fails
    assert _complete(http, iid, token).status_code == 200
    assert _complete(http, iid, token, "legacy").status_code == 200
    api_error(_complete(http, iid, "st_live_nope"), 401, "invalid_session_token")


def test_analysis_pending_then_ready(http, start, answers):
    s = start({"respondent": {"display_name": "Jane Doe"}})
    iid = s["interview_id"]
    _answer_all(http, s, answers)
    assert http.get(f"/api/v1/interviews/{iid}", headers=AUTH).json()["analysis"] is None
    done = _complete(http, iid, s["session_token"], reason="natural")
    assert done.json()["analysis_status"] == "pending"
    assert http.get(f"/api/v1/interviews/{iid}", headers=AUTH).json()["analysis"] == {"status": "pending"}
    time.sleep(0.25)  # the shared sandbox uses analysis_delay=0.2
    got = http.get(f"/api/v1/interviews/{iid}", headers=AUTH).json()
    analysis = got["analysis"]
    assert analysis["status"] == "ready"
    assert set(analysis) == {"status", "summary", "themes", "quality_score", "structured_answers", "statistics"}
    assert analysis["summary"].startswith("Jane Doe answered 6 of 6 questions")
    assert isinstance(analysis["quality_score"], int) and 1 <= analysis["quality_score"] <= 5
    assert analysis["themes"][0] == {"name": "onboarding", "mentions": 2}
    stats = analysis["statistics"]
    assert stats["respondent_messages"] == 6
    assert stats["respondent_words"] == sum(len(a.split()) for a, _ in answers)
    assert isinstance(stats["duration_seconds"], int)
    # the same 200 body again: complete does not re-run analysis
    assert _complete(http, iid, s["session_token"]).content == done.content
    assert http.get(f"/api/v1/interviews/{iid}", headers=AUTH).json()["analysis"] == analysis


def test_each_structured_type_extracted_with_the_right_type(http, start, answers):
    s = start()
    _answer_all(http, s, answers)
    _complete(http, s["interview_id"], s["session_token"])
    time.sleep(0.25)
    analysis = http.get(f"/api/v1/interviews/{s['interview_id']}", headers=AUTH).json()["analysis"]
    got = {a["questionType"]: a for a in analysis["structured_answers"]}
    assert list(got) == ["scale", "single_choice", "multiple_choice", "ranking", "yes_no"]
    expected = {q: v for (_, v), q in zip(answers[1:], got, strict=True)}
    for qtype, answer in got.items():
        assert set(answer) == {"questionId", "questionText", "questionType", "structuredValue",
                               "qualitativeAnswer", "confidence", "followUpInsights"}
        assert answer["structuredValue"] == expected[qtype], qtype
        assert type(answer["structuredValue"]) is type(expected[qtype]), qtype
        assert 0.0 < answer["confidence"] <= 1.0
        assert isinstance(answer["followUpInsights"], list)
    assert got["scale"]["questionId"] == "q2" and got["scale"]["qualitativeAnswer"] == "I'd say 8 out of 10"


def test_early_completion_only_reports_asked_questions(http, start):
    s = start()
    r = http.post(f"/api/v1/interviews/{s['interview_id']}/message", json={"content": "it was fine"},
                    headers={**AUTH, "X-Session-Token": s["session_token"]})
    assert r.status_code == 200  # q1 answered, q2 (scale) asked but unanswered
    _complete(http, s["interview_id"], s["session_token"], reason="respondent_left")
    time.sleep(0.25)
    analysis = http.get(f"/api/v1/interviews/{s['interview_id']}", headers=AUTH).json()["analysis"]
    (only,) = analysis["structured_answers"]
    assert (only["questionId"], only["structuredValue"], only["confidence"]) == ("q2", None, 0.0)


def _assert_plain_404(r: httpx.Response) -> None:
    assert r.status_code == 404
    assert r.text == "Not Found"
    assert r.headers["content-type"].startswith("text/plain")
    assert "x-ratelimit-limit" not in r.headers


def test_disabled_routes_are_plain_404(make_server):
    server = make_server(message_routes={"messages"}, complete_routes=frozenset({"legacy"}))
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        s = c.post("/api/v1/interviews/start", json={}).json()
        iid, h = s["interview_id"], {"X-Session-Token": s["session_token"]}
        _assert_plain_404(c.post(f"/api/v1/interviews/{iid}/message", json={"content": "x"}, headers=h))
        _assert_plain_404(c.post("/api/interview/complete", json={"interview_id": iid}, headers=h))
        assert c.post(f"/api/v1/interviews/{iid}/messages", json={"content": "x"}, headers=h).status_code == 200
        assert c.post(f"/api/v1/interviews/{iid}/complete", json={}, headers=h).status_code == 200
    server = make_server(message_routes={"message"}, complete_routes={"current"})
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        s = c.post("/api/v1/interviews/start", json={}).json()
        iid, h = s["interview_id"], {"X-Session-Token": s["session_token"]}
        _assert_plain_404(c.post(f"/api/v1/interviews/{iid}/messages", json={"content": "x"}, headers=h))
        _assert_plain_404(c.post(f"/api/v1/interviews/{iid}/complete", json={}, headers=h))
        assert c.post(f"/api/v1/interviews/{iid}/message", json={"content": "x"}, headers=h).status_code == 200
        assert c.post("/api/interview/complete", json={"interview_id": iid}, headers=h).status_code == 200


def test_unknown_routes_are_plain_404_and_wrong_method_405(http):
    _assert_plain_404(http.post("/api/v2/interviews/start", json={}, headers=AUTH))
    r = http.delete("/api/v1/interviews/start", headers=AUTH)
    assert r.status_code == 405
    assert "x-ratelimit-limit" not in r.headers
