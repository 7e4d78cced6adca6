"""`koji-mcp sandbox` and `koji-mcp demo` as a user runs them: real subprocesses, real HTTP."""

from __future__ import annotations

import socket
import subprocess
import time

import httpx

from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sandbox_subcommand_serves_kojis_api_and_prints_its_key() -> None:
    port = _free_port()
    proc = subprocess.Popen([*koji_mcp_command(), "sandbox", "--port", str(port), "--rate-limit", "5"],
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {DEMO_KEY}"}
        started = httpx.post(f"{base}/api/v1/interviews/start", json={}, headers=headers, timeout=5)
        assert started.status_code == 201 and started.headers["x-ratelimit-limit"] == "5"
        assert httpx.get(f"{base}/api/v1/interviews/nope", headers=headers, timeout=5).status_code == 404
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert base in out and DEMO_KEY in out


def test_sandbox_subcommand_refuses_a_bad_rate_limit() -> None:
    proc = subprocess.run([*koji_mcp_command(), "sandbox", "--rate-limit", "0"], env=subprocess_env(),
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stderr.strip()) == (2, "koji-mcp sandbox: --rate-limit must be at least 1")


def test_demo_runs_a_whole_interview() -> None:
    proc = subprocess.run([*koji_mcp_command(), "demo"], env=subprocess_env(), capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.rstrip().splitlines()[-1] == (
        "✓ demo finished: everything above went through MCP over stdio and real HTTP.")
