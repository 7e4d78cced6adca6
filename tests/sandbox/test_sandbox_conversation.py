"""Sending messages: JSON and SSE replies, natural end, session tokens, validation."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from koji_mcp.sandbox import DEMO_KEY, READ_ONLY_KEY, KeySpec, default_brief


def _msg(http: httpx.Client, iid: str, token: str | None, body: Any, route: str = "message",
         accept: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {DEMO_KEY}"}
    if token is not None:
        headers["X-Session-Token"] = token
    if accept:
        headers["Accept"] = accept
    return http.post(f"/api/v1/interviews/{iid}/{route}", json=body, headers=headers)


def _parse_sse(text: str) -> list[tuple[str | None, str]]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name, data = None, []
        for line in block.split("\n"):
            field, _, value = line.partition(": ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        events.append((name, "\n".join(data)))
    return events


def test_full_interview_over_json_ends_naturally(http, start, answers):
    started = start()
    iid, token = started["interview_id"], started["session_token"]
    questions = default_brief()["questions"]
    for i, (text, _) in enumerate(answers):
        r = _msg(http, iid, token, {"content": text}, route="message" if i % 2 else "messages")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        data = r.json()
        last = i + 1 == len(questions)
        assert set(data) == {"message_id", "interviewer_response", "interview_status", "messages_count"} | (
            set() if last else {"question"})
        if not last:
            assert data["question"]["id"] == questions[i + 1]["id"]
        assert data["message_id"].startswith("msg_")
        assert data["interviewer_response"]["message_id"].startswith("msg_")
        assert data["messages_count"] == 3 + 2 * i
        reply = data["interviewer_response"]["content"]
        if i + 1 < len(questions):
            assert data["interview_status"] == "active"
            assert questions[i + 1]["text"] in reply
        else:
            assert data["interview_status"] == "ended"
            assert reply == default_brief()["closing"]
    r = _msg(http, iid, token, {"content": "one more thing"})
    assert r.status_code == 409
    assert r.json() == {"error": "conflict",
                        "message": "The interview has already ended. Complete it to run the analysis."}
    got = http.get(f"/api/v1/interviews/{iid}", headers={"Authorization": f"Bearer {DEMO_KEY}"}).json()
    assert got["status"] == "ended" and got["analysis"] is None and got["completed_at"] is None
    roles = [m["role"] for m in got["transcript"]]
    assert roles == ["interviewer"] + ["respondent", "interviewer"] * len(answers)
    assert [m["content"] for m in got["transcript"][1::2]] == [a for a, _ in answers]


def test_structured_questions_tell_how_to_answer(http, start):
    started = start()
    replies = [_msg(http, started["interview_id"], started["session_token"], {"content": "ok"}).json()
               ["interviewer_response"]["content"] for _ in range(5)]
    assert replies[0].endswith("Please answer with a number from 1 to 10.")
    assert "Options: Documentation, Video tutorials, Customer support or Community forum." in replies[1]
    assert "Dashboards, Reports, Integrations, Alerts and Mobile app" in replies[2]
    assert "Faster performance, Better documentation, More integrations and Lower price" in replies[3]
    assert replies[4].endswith("(Yes or no.)")


def test_replies_carry_the_question_asked_as_data(http, start):
    """The documented `question` field: every question of the brief, as data, in the interview's locale."""
    started = start()
    assert started["question"] == {"id": "q1", "type": "open_ended"}
    asked = [_msg(http, started["interview_id"], started["session_token"], {"content": "ok"}).json().get("question")
             for _ in range(6)]
    assert asked == [
        {"id": "q2", "type": "scale", "min": 1, "max": 10},
        {"id": "q3", "type": "single_choice",
         "options": ["Documentation", "Video tutorials", "Customer support", "Community forum"]},
        {"id": "q4", "type": "multiple_choice",
         "options": ["Dashboards", "Reports", "Integrations", "Alerts", "Mobile app"]},
        {"id": "q5", "type": "ranking",
         "options": ["Faster performance", "Better documentation", "More integrations", "Lower price"]},
        {"id": "q6", "type": "yes_no"},
        None,  # the closing message asks nothing
    ]


def test_full_interview_over_sse(http, start, answers):
    started = start()
    iid, token = started["interview_id"], started["session_token"]
    for i, (text, _) in enumerate(answers):
        r = _msg(http, iid, token, {"content": text}, accept="text/event-stream")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        assert "x-ratelimit-remaining" in r.headers
        events = _parse_sse(r.text)
        deltas = [json.loads(d) for name, d in events if name == "delta"]
        assert 2 <= len(deltas) <= 4
        assert all(d["type"] == "delta" and d["content"] for d in deltas)
        (done,) = [json.loads(d) for name, d in events if name == "done"]
        assert events[-1] == (None, "[DONE]")
        assert ("question" in done) == (i < len(answers) - 1)
        assert done["type"] == "done" and done["message_id"].startswith("msg_")
        assert done["messages_count"] == 3 + 2 * i
        text_out = "".join(d["content"] for d in deltas)
        last = i == len(answers) - 1
        assert done["interview_status"] == ("ended" if last else "active")
        got = http.get(f"/api/v1/interviews/{iid}", headers={"Authorization": f"Bearer {DEMO_KEY}"}).json()
        assert got["transcript"][-1]["content"] == text_out
        assert got["transcript"][-1]["message_id"] == done["interviewer_message_id"]
    r = _msg(http, iid, token, {"content": "again"}, accept="text/event-stream")
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_older_type_field_accepted(http, start):
    s = start()
    r = _msg(http, s["interview_id"], s["session_token"], {"content": "fine", "type": "respondent"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [({}, "'content' is required"), ({"content": 5}, "'content' must be a string"),
     ({"content": ""}, "must not be empty"), ({"content": " \n\t "}, "must not be empty"),
     ({"content": "x" * 10_001}, "at most 10000"), ({"content": "hi", "type": "interviewer"}, "'type'"),
     ({"content": "hi", "role": "x"}, "'role'"), ([1], "JSON object")],
)
def test_message_invalid_request(http, start, api_error, body, needle):
    s = start()
    r = _msg(http, s["interview_id"], s["session_token"], body)
    assert needle in api_error(r, 400, "invalid_request")


def test_content_at_limit_is_accepted(http, start):
    s = start()
    assert _msg(http, s["interview_id"], s["session_token"], {"content": "y" * 10_000}).status_code == 200


def test_session_token_and_unknown_interview(http, start, api_error):
    s = start()
    iid = s["interview_id"]
    msg = "The session token is invalid or expired."
    assert api_error(_msg(http, iid, None, {"content": "hi"}), 401, "invalid_session_token") == msg
    assert api_error(_msg(http, iid, "st_live_wrong", {"content": "hi"}), 401, "invalid_session_token") == msg
    other = start()
    api_error(_msg(http, iid, other["session_token"], {"content": "hi"}), 401, "invalid_session_token")
    r = _msg(http, "00000000-0000-4000-8000-000000000000", s["session_token"], {"content": "hi"})
    assert api_error(r, 404, "not_found") == "The specified interview does not exist."
    assert "x-ratelimit-reset" in r.headers


def test_token_expires_after_complete(http, start, api_error):
    s = start()
    iid, token = s["interview_id"], s["session_token"]
    assert _msg(http, iid, token, {"content": "hello"}).status_code == 200
    r = http.post("/api/interview/complete", json={"interview_id": iid},
                    headers={"Authorization": f"Bearer {DEMO_KEY}", "X-Session-Token": token})
    assert r.status_code == 200
    api_error(_msg(http, iid, token, {"content": "hello again"}), 401, "invalid_session_token")
    api_error(_msg(http, iid, token, {"content": "sse"}, accept="text/event-stream"), 401,
              "invalid_session_token")


def test_interviews_are_scoped_to_the_project(make_server, api_error):
    other_key = "pk_live_" + "o" * 32
    server = make_server(extra_keys={other_key: KeySpec(project="other")})
    with httpx.Client(base_url=server.base_url) as c:
        r = c.post("/api/v1/interviews/start", json={}, headers={"Authorization": f"Bearer {DEMO_KEY}"})
        s = r.json()
        # same project, different key: visible
        assert c.get(f"/api/v1/interviews/{s['interview_id']}",
                     headers={"Authorization": f"Bearer {READ_ONLY_KEY}"}).status_code == 200
        # other project: 404 on read, message and complete, even with the right session token
        h = {"Authorization": f"Bearer {other_key}", "X-Session-Token": s["session_token"]}
        api_error(c.get(f"/api/v1/interviews/{s['interview_id']}", headers=h), 404, "not_found")
        api_error(c.post(f"/api/v1/interviews/{s['interview_id']}/message", json={"content": "x"}, headers=h),
                  404, "not_found")
        api_error(c.post("/api/interview/complete", json={"interview_id": s["interview_id"]}, headers=h),
                  404, "not_found")
        # and the other project can start its own interviews
        assert c.post("/api/v1/interviews/start", json={}, headers=h).status_code == 201
