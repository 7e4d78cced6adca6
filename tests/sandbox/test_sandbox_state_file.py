"""SandboxConfig.state_file: interviews shared by sandboxes one after another or side by side."""

from __future__ import annotations

import httpx

from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}


def test_two_live_sandboxes_on_one_file_see_each_others_interviews(tmp_path) -> None:
    path = str(tmp_path / "s" / "state.json")
    with SandboxServer(SandboxConfig(state_file=path)) as a, SandboxServer(SandboxConfig(state_file=path)) as b:
        started = httpx.post(a.base_url + "/api/v1/interviews/start", json={}, headers=AUTH).json()
        iid, token = started["interview_id"], started["session_token"]
        other = httpx.post(b.base_url + "/api/v1/interviews/start", json={}, headers=AUTH).json()["interview_id"]
        r = httpx.post(f"{b.base_url}/api/v1/interviews/{iid}/message", json={"content": "fine"},
                       headers={**AUTH, "X-Session-Token": token})
        assert r.status_code == 200 and r.json()["messages_count"] == 3
        got = httpx.get(f"{a.base_url}/api/v1/interviews/{iid}", headers=AUTH).json()
        assert got["messages_count"] == 3  # A sees the message B took
        assert httpx.get(f"{a.base_url}/api/v1/interviews/{other}", headers=AUTH).status_code == 200
    with SandboxServer(SandboxConfig(state_file=path)) as c:  # and a later one sees both
        assert {i["interview_id"] for i in httpx.get(c.base_url + "/_sandbox/interviews").json()["interviews"]} == {
            iid, other}
        httpx.post(c.base_url + "/_sandbox/reset")
    with SandboxServer(SandboxConfig(state_file=path)) as d:
        assert httpx.get(d.base_url + "/_sandbox/interviews").json()["interviews"] == []


def test_without_a_state_file_nothing_is_written(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with SandboxServer() as sandbox:
        assert httpx.post(sandbox.base_url + "/api/v1/interviews/start", json={}, headers=AUTH).status_code == 201
        assert sandbox.state.state_file is None
    assert list(tmp_path.iterdir()) == []
