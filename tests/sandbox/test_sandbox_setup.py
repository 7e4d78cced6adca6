"""Keys, config, briefs, and running the server (thread, async use, foreground command)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

import koji_mcp.sandbox as sandbox
from koji_mcp.sandbox import (
    DELETED_PROJECT_KEY,
    DEMO_KEY,
    DRAFT_PROJECT_KEY,
    NO_PERMISSION_KEY,
    READ_ONLY_KEY,
    REVOKED_KEY,
    START_ONLY_KEY,
    SandboxConfig,
    SandboxServer,
    create_app,
    default_brief,
    load_brief,
)

SRC = str(Path(sandbox.__file__).resolve().parents[2])


def test_keys_have_koji_shape_and_are_distinct():
    keys = [DEMO_KEY, READ_ONLY_KEY, START_ONLY_KEY, NO_PERMISSION_KEY, DRAFT_PROJECT_KEY, DELETED_PROJECT_KEY,
            REVOKED_KEY]
    assert all(re.fullmatch(r"pk_live_[a-z0-9]{32}", k) for k in keys)
    assert len(set(keys)) == len(keys)


def test_default_brief_shape():
    brief = default_brief()
    assert brief["published"] is True and brief["default_locale"] == "en" and brief["default_mode"] == "text"
    assert brief["locales"] == ["en", "es", "fr", "de", "pt-BR"]
    assert [q["type"] for q in brief["questions"]] == [
        "open_ended", "scale", "single_choice", "multiple_choice", "ranking", "yes_no"]
    assert [q["id"] for q in brief["questions"]] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    brief["title"] = "mutated"
    assert default_brief()["title"] != "mutated"  # callers get a copy


def test_config_validation():
    for bad in ({"rate_limit": 0}, {"window_seconds": 0}, {"analysis_delay": -1}, {"message_routes": {"msg"}},
                {"complete_routes": {"v2"}}, {"extra_keys": {"k": "all"}}):
        with pytest.raises(ValueError):
            SandboxConfig(**bad)
    with pytest.raises(ValueError, match="title"):
        create_app(SandboxConfig(brief={"questions": []}))


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "brief.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_load_brief_roundtrip_and_defaults(tmp_path):
    assert load_brief(_write(tmp_path, default_brief())) == default_brief()
    minimal = load_brief(_write(tmp_path, {"title": "T", "questions": [{"id": "a", "type": "open_ended",
                                                                        "text": "Why?"}]}))
    assert (minimal["published"], minimal["locales"], minimal["default_locale"]) == (True, ["en"], "en")


def _q(**kw):
    return {"id": "a", "type": "open_ended", "text": "Why?", **kw}


@pytest.mark.parametrize(
    ("brief", "needle"),
    [([], "JSON object"), ({"questions": [_q()]}, "'title'"), ({"title": "T"}, "'questions'"),
     ({"title": "T", "questions": []}, "'questions'"),
     ({"title": "T", "questions": [_q(), _q()]}, "duplicates question id 'a'"),
     ({"title": "T", "questions": [_q(type="essay")]}, "'questions[0].type'"),
     ({"title": "T", "questions": [_q(type="single_choice", options=["x"])]}, "'questions[0].options'"),
     ({"title": "T", "questions": [_q(type="ranking")]}, "'questions[0].options'"),
     ({"title": "T", "questions": [_q(type="scale", min=5, max=5)]}, "must be less than"),
     ({"title": "T", "questions": [_q(type="scale", min=1)]}, "'questions[0].max'"),
     ({"title": "T", "questions": [_q(text="")]}, "'questions[0].text'"),
     ({"title": "T", "locales": [], "questions": [_q()]}, "'locales'"),
     ({"title": "T", "locales": ["en", 3], "questions": [_q()]}, "'locales[1]'"),
     ({"title": "T", "locales": ["en"], "default_locale": "fr", "questions": [_q()]}, "'default_locale'"),
     ({"title": "T", "greetings": {"fr": "Salut"}, "questions": [_q()]}, "'greetings'"),
     ({"title": "T", "published": "yes", "questions": [_q()]}, "'published'")],
)
def test_load_brief_rejects(tmp_path, brief, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        load_brief(_write(tmp_path, brief))


def test_load_brief_bad_json_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not valid JSON"):
        load_brief(_write(tmp_path, "{oops"))
    with pytest.raises(ValueError, match="Cannot read"):
        load_brief(tmp_path / "missing.json")


def test_custom_brief_drives_the_interviewer(make_server):
    brief = {"title": "Pricing", "locales": ["en", "it"], "default_locale": "it",
             "greeting": "Hello {name}.", "greetings": {"it": "Ciao {name}."}, "closing": "Bye.",
             "questions": [{"id": "p1", "type": "yes_no", "text": "Is it cheap?"}]}
    server = make_server(brief=brief)
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {DEMO_KEY}"}) as c:
        s = c.post("/api/v1/interviews/start", json={"respondent": {"display_name": "Luca Rossi"}}).json()
        assert s["initial_message"] == "Ciao Luca. Is it cheap? (Yes or no.)"
        r = c.post(f"/api/v1/interviews/{s['interview_id']}/message", json={"content": "nope"},
                   headers={"X-Session-Token": s["session_token"]})
        assert r.json()["interview_status"] == "ended"
    server = make_server(brief={**brief, "published": False})
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {DEMO_KEY}"}) as c:
        assert c.post("/api/v1/interviews/start", json={}).status_code == 422


def test_server_lifecycle(make_server):
    server = SandboxServer(SandboxConfig())
    with pytest.raises(RuntimeError):
        server.port  # noqa: B018 - not running yet
    with server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        assert server.state is server.app.state.sandbox
        assert httpx.get(server.base_url + "/_sandbox/faults").status_code == 200
        url = server.base_url
    server.stop()  # idempotent
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_sandbox/faults")
    busy = make_server()
    with pytest.raises(OSError):
        SandboxServer(port=busy.port).start()


@pytest.mark.anyio
async def test_usable_from_async_code():
    with SandboxServer() as server:
        async with httpx.AsyncClient(base_url=server.base_url) as c:
            r = await c.post("/api/v1/interviews/start", json={}, headers={"Authorization": f"Bearer {DEMO_KEY}"})
            assert r.status_code == 201
        assert len(server.state.interviews) == 1


def _python(code: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_background_server_writes_nothing_to_stdout():
    proc = _python("""
        import httpx
        from koji_mcp.sandbox import DEMO_KEY, SandboxServer
        with SandboxServer() as s:
            h = {"Authorization": "Bearer " + DEMO_KEY}
            httpx.post(s.base_url + "/api/v1/interviews/start", json={}, headers=h)
            httpx.post(s.base_url + "/api/v1/interviews/start", json={}, headers={})
            httpx.get(s.base_url + "/nowhere")
    """)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == ""


def test_run_sandbox_banner_and_clean_ctrl_c():
    proc = _python("""
        from koji_mcp.sandbox import SandboxConfig, run_sandbox
        run_sandbox(SandboxConfig(rate_limit=42), port=0)
    """)
    assert proc.stdout is not None
    lines = [proc.stdout.readline()]
    while lines[-1] and not lines[-1].startswith("Try:"):
        lines.append(proc.stdout.readline())
    url = re.search(r"http://127\.0\.0\.1:\d+", lines[0]).group()
    r = httpx.post(url + "/api/v1/interviews/start", json={}, headers={"Authorization": f"Bearer {DEMO_KEY}"},
                   timeout=10)
    assert r.status_code == 201
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    out = "".join(lines)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert DEMO_KEY in out and READ_ONLY_KEY in out and "interview:read" in out
    assert "Onboarding experience study" in out and "42 requests per 60 s" in out
