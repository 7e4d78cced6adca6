"""The MCP Inspector's CLI (the ecosystem's reference client, Node) drives the real koji-mcp over stdio.

Skipped when `npx` is not on PATH or the npm registry cannot be reached (checked quickly, with a
timeout). The first run downloads the Inspector into npm's cache (~25 s); later runs take ~3 s a call.
`--cli` runs on Node 20 although the package declares Node >= 22.19 (npm prints EBADENGINE).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, koji_mcp_command, subprocess_env

pytestmark = pytest.mark.slow

INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"  # pinned: the CLI's output format is what we assert on
REGISTRY_CHECK_TIMEOUT = 20
FIRST_RUN_TIMEOUT = 240  # includes downloading the package on a cold npm cache


@functools.cache
def inspector_unavailable() -> str | None:
    """Why the Inspector cannot run here, or None."""
    npx, npm = shutil.which("npx"), shutil.which("npm")
    if npx is None or npm is None:
        return "npx is not on PATH (the Inspector is an npm package)"
    try:
        # --prefer-offline: answered from npm's cache when the package was fetched before.
        probe = subprocess.run(
            [npm, "view", INSPECTOR, "version", "--prefer-offline", "--fetch-retries=0",
             f"--fetch-timeout={(REGISTRY_CHECK_TIMEOUT - 5) * 1000}"],
            capture_output=True, text=True, timeout=REGISTRY_CHECK_TIMEOUT, stdin=subprocess.DEVNULL,
            env=subprocess_env(),
        )
    except subprocess.TimeoutExpired:
        return f"the npm registry did not answer within {REGISTRY_CHECK_TIMEOUT} s"
    if probe.returncode != 0:
        errors = [line for line in probe.stderr.splitlines() if line.strip() and "complete log" not in line]
        return f"the npm registry is unreachable ({errors[0] if errors else 'npm exit ' + str(probe.returncode)})"
    return None


def koji_mcp_script() -> str | None:
    script = ROOT / ".venv" / "bin" / "koji-mcp"
    if script.exists():
        return str(script.absolute())
    command = koji_mcp_command()
    return command[0] if len(command) == 1 and Path(command[0]).is_absolute() else None


def inspect(*method_args: str, timeout: float = FIRST_RUN_TIMEOUT) -> tuple[Any, str]:
    """Run `inspector --cli koji-mcp serve --sandbox ...`; return its JSON output and stderr."""
    reason = inspector_unavailable()
    if reason:
        pytest.skip(reason)
    script = koji_mcp_script()
    if script is None:
        pytest.skip("no koji-mcp console script (run `make venv`)")
    command = [
        shutil.which("npx") or "npx", "-y", INSPECTOR, "--cli",
        script, "serve", "--sandbox", "--state-dir", ":memory:",
        *method_args,
    ]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env=subprocess_env(), cwd=str(ROOT))
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the Inspector did not finish within {timeout} s: {exc.stderr!r}")
    assert proc.returncode == 0, f"inspector exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
    try:
        return json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        pytest.fail(f"the Inspector's output is not JSON:\n{proc.stdout}\nstderr: {proc.stderr}")


def test_inspector_lists_the_tools() -> None:
    listed, stderr = inspect("--method", "tools/list")
    tools = {tool["name"]: tool for tool in listed["tools"]}
    assert "start_interview" in tools
    assert {"send_interview_message", "complete_interview", "get_interview", "list_interviews"} <= set(tools)
    start = tools["start_interview"]
    assert start["title"] == "Start interview"
    assert start["inputSchema"]["type"] == "object" and "mode" in start["inputSchema"]["properties"]
    assert set(start["annotations"]) >= {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
    # The Inspector checks tool schemas for portability across model providers: no errors allowed.
    portability = [line for line in stderr.splitlines() if line.startswith("Schema portability:")]
    assert all(line.startswith("Schema portability: 0 errors") for line in portability), portability


def test_inspector_calls_start_interview() -> None:
    result, _ = inspect("--method", "tools/call", "--tool-name", "start_interview", "--tool-arg", "mode=text")
    assert result["isError"] is False
    structured = result["structuredContent"]
    assert structured["interview_id"]
    assert structured["mode"] == "text"
    assert structured["interview_id"] in result["content"][0]["text"]
    assert "session_token" not in json.dumps(result)
