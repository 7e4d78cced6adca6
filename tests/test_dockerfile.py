"""The Dockerfile, checked without Docker: its instructions parse and say what we promise, and the exact
entrypoint command (plus the healthcheck) works from this venv."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import ROOT, subprocess_env

DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, `\\` continuations joined (Docker's own rules)."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        assert word.isupper(), f"not an instruction: {full!r}"
        result.append((word, rest.strip()))
    assert not pending, "the file ends inside a continued line"
    return result


PARSED = instructions(DOCKERFILE.read_text(encoding="utf-8"))


def one(name: str) -> str:
    [value] = [rest for word, rest in PARSED if word == name]
    return value


def env() -> dict[str, str]:
    values: dict[str, str] = {}
    for word, rest in PARSED:
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                values[key] = value
    return values


def exec_form(name: str) -> list[str]:
    return json.loads(one(name))


def test_the_dockerfile_says_what_we_promise() -> None:
    assert [w for w, _ in PARSED][0] == "FROM"
    assert re.fullmatch(r"python:3\.1[1-9]-slim", one("FROM"))
    user = one("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    assert PARSED.index(("USER", user)) > max(i for i, (w, _) in enumerate(PARSED) if w == "RUN")  # installs ran as root
    assert f"--uid 10001" in next(rest for w, rest in PARSED if w == "RUN" and "useradd" in rest)
    state_dir = env()["KOJI_MCP_STATE_DIR"]
    assert json.loads(one("VOLUME")) == [state_dir]
    entry = exec_form("ENTRYPOINT")
    assert entry[:4] == ["koji-mcp", "serve", "--transport", "streamable-http"]
    assert entry[entry.index("--host") + 1] == "0.0.0.0"
    port = entry[entry.index("--port") + 1]
    assert one("EXPOSE") == port
    assert "--insecure-no-auth" not in entry and exec_form("CMD") == []
    health = one("HEALTHCHECK")
    assert health.startswith("--interval=") and f"http://127.0.0.1:{port}/healthz" in health
    for word, rest in PARSED:
        if word == "COPY":
            *sources, _ = rest.split()
            assert all((ROOT / s).exists() for s in sources), rest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def container_command(port: int) -> tuple[list[str], list[str]]:
    """The entrypoint and the healthcheck, with this venv's executables and a free port for 8000."""
    entry = exec_form("ENTRYPOINT")
    entry[entry.index("--port") + 1] = str(port)
    koji_mcp = Path(sys.executable).with_name("koji-mcp")
    command = [str(koji_mcp)] if koji_mcp.is_file() else [sys.executable, "-m", "koji_mcp"]
    health = json.loads(one("HEALTHCHECK").split(" CMD ", 1)[1])
    assert health[0] == "python"
    health = [sys.executable, *health[1:]]
    health[-1] = health[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return [*command, *entry[1:]], health


@pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
def test_the_entrypoint_refuses_to_run_without_auth(tmp_path) -> None:
    command, _ = container_command(free_port())
    proc = subprocess.run(command, env=subprocess_env(**{**env(), "KOJI_MCP_STATE_DIR": str(tmp_path)},
                                                      KOJI_API_KEY=DEMO_KEY), capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert "refusing to serve on 0.0.0.0 without auth" in proc.stderr


@pytest.mark.skipif(os.name == "nt", reason="POSIX paths")
def test_the_entrypoint_serves_with_a_token_and_passes_its_healthcheck(sandbox, tmp_path) -> None:
    port = free_port()
    command, health = container_command(port)
    token = "t" * 40
    variables = {**env(), "KOJI_MCP_STATE_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(command, env=subprocess_env(**variables, KOJI_API_KEY=DEMO_KEY,
                                                        KOJI_BASE_URL=sandbox.base_url,
                                                        KOJI_MCP_AUTH_TOKEN=f"ops={token}"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(health, capture_output=True, timeout=10).returncode != 0:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "healthcheck never passed"
            time.sleep(0.2)
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream"}
        url = f"http://127.0.0.1:{port}/mcp"
        assert httpx.post(url, json=body, headers=accept, timeout=10).status_code == 401
        ok = httpx.post(url, json=body, headers={**accept, "Authorization": f"Bearer {token}"}, timeout=10)
        assert ok.status_code == 200 and "koji-mcp" in ok.text
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert (tmp_path / "data" / "ledger.sqlite3").exists()  # the state dir (the volume) holds the ledger
