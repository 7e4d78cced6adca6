"""The /_sandbox control endpoints: faults, request log, interviews, reset."""

from __future__ import annotations

import time

import httpx
import pytest

from koji_mcp.sandbox import DEMO_KEY

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
START = "/api/v1/interviews/start"


def _fault(http: httpx.Client, **fault) -> None:
    r = http.post("/_sandbox/faults", json=fault)
    assert r.status_code == 201, r.text


def test_fault_json_times_and_then_normal(http):
    _fault(http, method="POST", path=START, status=500, json={"error": "internal_error", "message": "boom"},
           times=2)
    for _ in range(2):
        r = http.post(START, json={}, headers=AUTH)
        assert r.status_code == 500
        assert r.json() == {"error": "internal_error", "message": "boom"}
        assert r.headers["content-type"] == "application/json"
    assert http.post(START, json={}, headers=AUTH).status_code == 201
    assert http.get("/_sandbox/interviews").json()["interviews"].__len__() == 1


def test_fault_body_content_type_headers(http):
    _fault(http, status=502, body="<html>Bad gateway</html>", content_type="text/html",
           headers={"X-Upstream": "down", "Retry-After": "7"})
    r = http.get("/api/v1/interviews/anything", headers=AUTH)
    assert r.status_code == 502
    assert r.text == "<html>Bad gateway</html>"
    assert r.headers["content-type"] == "text/html"
    assert (r.headers["x-upstream"], r.headers["retry-after"]) == ("down", "7")
    assert "x-ratelimit-limit" not in r.headers


def test_fault_matching_by_method_and_path(http):
    _fault(http, method="GET", path="/api/v1/interviews/abc", status=503)
    assert http.post(START, json={}, headers=AUTH).status_code == 201  # other method and path
    assert http.get("/api/v1/interviews/other", headers=AUTH).status_code == 404  # other path
    r = http.get("/api/v1/interviews/abc", headers=AUTH)
    assert r.status_code == 503 and r.text == ""
    assert http.get("/_sandbox/faults").json() == {"faults": []}


def test_fault_delay_and_delay_only(http):
    _fault(http, path=START, status=504, delay=0.3)
    t = time.monotonic()
    assert http.post(START, json={}, headers=AUTH).status_code == 504
    assert time.monotonic() - t >= 0.3
    _fault(http, path=START, delay=0.2)  # no status: slow, but the real response
    t = time.monotonic()
    assert http.post(START, json={}, headers=AUTH).status_code == 201
    assert time.monotonic() - t >= 0.2
    _fault(http, path=START, delay=0.5)
    with pytest.raises(httpx.ReadTimeout):
        http.post(START, json={}, headers=AUTH, timeout=0.1)


def test_fault_after_processing_loses_the_response(http):
    _fault(http, path=START, status=500, body="upstream timeout", after_processing=True)
    r = http.post(START, json={"respondent": {"external_id": "lost"}}, headers=AUTH)
    assert r.status_code == 500 and r.text == "upstream timeout"
    (interview,) = http.get("/_sandbox/interviews").json()["interviews"]
    assert interview["respondent"]["external_id"] == "lost"
    assert interview["session_token"].startswith("st_live_")
    assert http.get("/_sandbox/requests").json()["requests"][-1]["status"] == 500


def test_after_processing_with_sse_reply(http, start):
    s = start()
    _fault(http, status=500, after_processing=True)
    r = http.post(f"/api/v1/interviews/{s['interview_id']}/message", json={"content": "hi"},
                    headers={**AUTH, "X-Session-Token": s["session_token"], "Accept": "text/event-stream"})
    assert r.status_code == 500
    (interview,) = http.get("/_sandbox/interviews").json()["interviews"]
    assert interview["messages_count"] == 3


@pytest.mark.parametrize(
    "fault",
    [{"status": 99}, {"status": "500"}, {"status": 500, "times": 0}, {"status": 500, "delay": -1},
     {"status": 500, "headers": {"a": 1}}, {"status": 500, "bogus": 1}, {}, {"json": {}},
     {"status": 500, "after_processing": "yes"}],
)
def test_invalid_faults(http, api_error, fault):
    api_error(http.post("/_sandbox/faults", json=fault), 400, "invalid_request")


def test_clear_faults(http):
    _fault(http, status=500, times=5)
    assert len(http.get("/_sandbox/faults").json()["faults"]) == 1
    assert http.delete("/_sandbox/faults").status_code == 200
    assert http.post(START, json={}, headers=AUTH).status_code == 201


def test_request_log(http, start):
    r = http.post(START, json={"locale": "fr"}, headers={**AUTH, "X-Custom": "Yes"})
    http.post(START, json={}, headers={"Authorization": "Bearer nope"})
    http.post("/nowhere", content=b"not json")
    http.get("/_sandbox/interviews")  # control requests are not logged
    log = http.get("/_sandbox/requests").json()["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", START, 201), ("POST", START, 401), ("POST", "/nowhere", 404)]
    first = log[0]
    assert set(first) == {"method", "path", "headers", "json", "body", "status"}
    assert first["headers"]["authorization"] == f"Bearer {DEMO_KEY}"
    assert first["headers"]["x-custom"] == "Yes"
    assert first["json"] == {"locale": "fr"}
    assert first["body"] == r.request.content.decode()
    assert (log[2]["json"], log[2]["body"]) == (None, "not json")
    assert http.delete("/_sandbox/requests").status_code == 200
    assert http.get("/_sandbox/requests").json() == {"requests": []}


def test_request_log_records_429(make_server):
    server = make_server(rate_limit=1)
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        c.post(START, json={})
        c.post(START, json={})
        assert [e["status"] for e in c.get("/_sandbox/requests").json()["requests"]] == [201, 429]


def test_sandbox_interviews_and_reset(http, start):
    s = start({"respondent": {"display_name": "Ann"}})
    _fault(http, status=500)
    (item,) = http.get("/_sandbox/interviews").json()["interviews"]
    assert item["interview_id"] == s["interview_id"]
    assert item["session_token"] == s["session_token"]
    assert item["project"] == "demo" and item["status"] == "active"
    assert http.post("/_sandbox/reset").json() == {"reset": True}
    assert http.get("/_sandbox/interviews").json() == {"interviews": []}
    assert http.get("/_sandbox/requests").json() == {"requests": []}
    assert http.get("/_sandbox/faults").json() == {"faults": []}
    r = http.get(f"/api/v1/interviews/{s['interview_id']}", headers=AUTH)
    assert r.status_code == 404
