"""Start endpoint, authentication and permissions against a real sandbox server."""

from __future__ import annotations

import re
import uuid

import pytest

from koji_mcp.sandbox import (
    DELETED_PROJECT_KEY,
    DEMO_KEY,
    DRAFT_PROJECT_KEY,
    NO_PERMISSION_KEY,
    READ_ONLY_KEY,
    REVOKED_KEY,
    START_ONLY_KEY,
)

START = "/api/v1/interviews/start"


def test_start_success_shape_and_personalised_greeting(http, bearer):
    body = {"respondent": {"external_id": "user_12345", "display_name": "Jane Doe",
                           "metadata": {"segment": "power_users", "tenure": 24, "beta": True, "x": None}},
            "mode": "text", "locale": "en"}
    r = http.post(START, json=body, headers=bearer(DEMO_KEY))
    assert r.status_code == 201
    assert r.headers["content-type"] == "application/json"
    data = r.json()
    assert set(data) == {"interview_id", "session_token", "initial_message", "question"}
    assert uuid.UUID(data["interview_id"]).version == 4
    assert re.fullmatch(r"st_live_[A-Za-z0-9]{24}", data["session_token"])
    assert data["initial_message"].startswith("Hi Jane! Thanks for taking the time")
    assert data["initial_message"].endswith("What stood out, good or bad?")
    got = http.get(f"/api/v1/interviews/{data['interview_id']}", headers=bearer(DEMO_KEY)).json()
    assert got["respondent"] == body["respondent"]
    assert (got["mode"], got["locale"], got["status"], got["messages_count"]) == ("text", "en", "active", 1)


def test_start_defaults_anonymous_and_empty_body(http, bearer):
    r = http.post(START, content=b"", headers=bearer(DEMO_KEY))
    assert r.status_code == 201
    assert r.json()["initial_message"].startswith("Hi! Thanks")
    got = http.get(f"/api/v1/interviews/{r.json()['interview_id']}", headers=bearer(DEMO_KEY)).json()
    assert (got["mode"], got["locale"]) == ("text", "en")


def test_start_localised_greeting_and_voice_mode(http, bearer, start):
    data = start({"respondent": {"display_name": "María"}, "locale": "es", "mode": "voice"})
    assert data["initial_message"].startswith("¡Hola María! Gracias")
    data = start({"locale": "PT-br"})  # locale match is case-insensitive, canonical spelling kept
    assert data["initial_message"].startswith("Olá! Obrigado")
    got = http.get(f"/api/v1/interviews/{data['interview_id']}", headers=bearer(DEMO_KEY)).json()
    assert got["locale"] == "pt-BR"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b'{"metadata": {"a": 1}}', "'metadata'"),
        (b'{"conversation_id": "x"}', "'conversation_id'"),
        (b'{"respondent": {"name": "Jane"}}', "'respondent.name'"),
        (b'{"respondent": "Jane"}', "'respondent'"),
        (b'{"respondent": {"display_name": 42}}', "'respondent.display_name'"),
        (b'{"respondent": {"external_id": ["a"]}}', "'respondent.external_id'"),
        (b'{"respondent": {"metadata": {"plan": {"tier": 1}}}}', "'respondent.metadata.plan'"),
        (b'{"respondent": {"metadata": {"tags": ["a"]}}}', "'respondent.metadata.tags'"),
        (b'{"respondent": {"metadata": "flat"}}', "'respondent.metadata'"),
        (b'{"mode": "video"}', "'mode'"),
        (b'{"locale": 5}', "'locale'"),
    ],
)
def test_start_invalid_request(http, bearer, api_error, body, needle):
    r = http.post(START, content=body, headers={**bearer(DEMO_KEY), "Content-Type": "application/json"})
    assert needle in api_error(r, 400, "invalid_request")


def test_start_unsupported_locale_lists_supported(http, bearer, api_error):
    r = http.post(START, json={"locale": "xx"}, headers=bearer(DEMO_KEY))
    assert api_error(r, 400, "invalid_request") == "Unsupported locale 'xx'. Supported: en, es, fr, de, pt-BR."


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": f"Bearer pk_live_{'x' * 32}"}, {"Authorization": f"Bearer {REVOKED_KEY}"},
     {"Authorization": DEMO_KEY}, {"Authorization": f"Basic {DEMO_KEY}"}, {"Authorization": "Bearer"}],
    ids=["missing", "unknown", "revoked", "no-scheme", "basic", "empty"],
)
def test_unauthorized(http, api_error, headers):
    r = http.post(START, json={}, headers=headers)
    assert api_error(r, 401, "unauthorized") == "The provided API key is invalid or has been revoked."
    assert r.headers["x-ratelimit-limit"] == "60"


def test_bearer_scheme_is_case_insensitive(http):
    assert http.post(START, json={}, headers={"Authorization": f"bearer {DEMO_KEY}"}).status_code == 201


def test_deleted_project_404_and_draft_project_422(http, bearer, api_error):
    r = http.post(START, json={}, headers=bearer(DELETED_PROJECT_KEY))
    assert api_error(r, 404, "not_found") == "The specified project does not exist."
    r = http.post(START, json={}, headers=bearer(DRAFT_PROJECT_KEY))
    assert api_error(r, 422, "unprocessable") == "The project has no published research brief."
    # body validation comes before the project checks
    api_error(http.post(START, json={"mode": 1}, headers=bearer(DRAFT_PROJECT_KEY)), 400, "invalid_request")


FORBIDDEN = "Your API key does not have the required permission for this action."


def _endpoint_calls(iid: str, token: str):
    h = {"X-Session-Token": token}
    return {
        "start": ("POST", START, {}, {}),
        "message": ("POST", f"/api/v1/interviews/{iid}/message", {"content": "hi"}, h),
        "messages": ("POST", f"/api/v1/interviews/{iid}/messages", {"content": "hi"}, h),
        "complete": ("POST", "/api/interview/complete", {"interview_id": iid}, h),
        "complete-legacy": ("POST", f"/api/v1/interviews/{iid}/complete", {}, h),
        "get": ("GET", f"/api/v1/interviews/{iid}", None, {}),
    }


@pytest.mark.parametrize(
    ("key", "allowed"),
    [(NO_PERMISSION_KEY, set()), (READ_ONLY_KEY, {"get"}), (START_ONLY_KEY, {"start"})],
    ids=["none", "read-only", "start-only"],
)
def test_forbidden_per_endpoint(http, bearer, start, api_error, key, allowed):
    started = start()
    for name, (method, path, body, headers) in _endpoint_calls(started["interview_id"],
                                                               started["session_token"]).items():
        r = http.request(method, path, json=body, headers={**bearer(key), **headers})
        if name in allowed:
            assert r.status_code in (200, 201), (name, r.text)
        else:
            assert api_error(r, 403, "forbidden") == FORBIDDEN, name
        assert "x-ratelimit-remaining" in r.headers


def test_permission_checked_before_body_validation(http, bearer, api_error):
    r = http.post(START, content=b"{broken", headers=bearer(READ_ONLY_KEY))
    api_error(r, 403, "forbidden")
