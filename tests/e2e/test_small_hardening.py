"""The smaller findings of the security review (issue 11, item 13), through the real CLI and server.

- `serve` and `batch` refuse a plain http:// KOJI_BASE_URL on another machine (the key would travel
  in clear) unless --allow-insecure-upstream; loopback http (a local sandbox) stays allowed;
- `doctor` never prints a user name or password embedded in the base URL;
- `koji-mcp sandbox` refuses a non-loopback --host (its /_sandbox/ endpoints show session tokens);
- `start_interviews` warns that respondents without an external_id would be invited again;
- every runtime dependency has an upper bound.
(Malformed stdio frames: tests/e2e/test_malformed_frames.py; SDK internals: tests/test_sdk_internals.py.)
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest
from mcp import Client

from koji_mcp.sandbox import DEMO_KEY
from koji_mcp.server.app import build_server
from tests.conftest import ROOT, koji_mcp_command, subprocess_env

KEY = "pk_live_" + "f" * 32


def koji_mcp(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*koji_mcp_command(), *args], env=subprocess_env(**env), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    err = proc.stderr.strip()
    assert proc.returncode == code and "Traceback" not in err, (proc.returncode, proc.stderr[-2000:])
    assert err and "\n" not in err, proc.stderr
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("command", [["serve"], ["batch", "PEOPLE"]])  # a dry run sends nothing: no refusal
def test_plain_http_to_another_machine_is_refused(command, tmp_path) -> None:
    people = tmp_path / "p.csv"
    people.write_text("external_id\nu1\n")
    args = [str(people) if a == "PEOPLE" else a for a in command]
    proc = koji_mcp(*args, KOJI_API_KEY=KEY, KOJI_BASE_URL="http://bob:pw1234@koji.example.com",
                    KOJI_MCP_STATE_DIR=str(tmp_path / "s"))
    err = one_line(proc, 2, "plain http to another machine", "--allow-insecure-upstream")
    assert "pw1234" not in err and "bob" not in err


def test_the_override_and_loopback_http_are_accepted(sandbox, tmp_path) -> None:
    people = tmp_path / "p.csv"
    people.write_text("external_id\nu1\n")
    state = str(tmp_path / "s")
    local = koji_mcp("batch", str(people), "--dry-run", KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url,
                     KOJI_MCP_STATE_DIR=state)
    assert local.returncode == 0, local.stderr
    allowed = koji_mcp("batch", str(people), "--dry-run", "--allow-insecure-upstream", KOJI_API_KEY=KEY,
                       KOJI_BASE_URL="http://koji.example.com", KOJI_MCP_STATE_DIR=state)
    assert allowed.returncode == 0, allowed.stderr
    by_env = koji_mcp("serve", KOJI_API_KEY=KEY, KOJI_BASE_URL="http://koji.example.com", KOJI_MCP_STATE_DIR=state,
                      KOJI_MCP_ALLOW_INSECURE_UPSTREAM="1")
    assert by_env.returncode == 0, by_env.stderr  # stdio: EOF on stdin ends it cleanly


def test_doctor_masks_userinfo_in_the_base_url(sandbox, tmp_path) -> None:
    url = sandbox.base_url.replace("http://", "http://researcher:hunter2secret@")
    proc = koji_mcp("doctor", "--state-dir", str(tmp_path / "s"), KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=url)
    output = proc.stdout + proc.stderr
    assert "hunter2secret" not in output and "researcher" not in output, output
    assert "http://…@127.0.0.1:" in output, output


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "example.com"])
def test_the_sandbox_refuses_a_non_loopback_host(host) -> None:
    proc = koji_mcp("sandbox", "--host", host, "--port", "1", timeout=30)
    one_line(proc, 2, f"refusing --host {host}", "/_sandbox/", "127.0.0.1")


@pytest.mark.anyio
async def test_start_interviews_warns_about_respondents_without_external_id(settings) -> None:
    async with Client(build_server(settings), mode="legacy") as client:
        for dry_run in (True, False):
            result = await client.call_tool("start_interviews", {
                "respondents": [{"external_id": "e1"}, {"display_name": "No Id"}, {}], "dry_run": dry_run})
            assert not result.is_error, result.content[0].text
            assert ("Warning: 2 respondent(s) have no external_id: they cannot be deduplicated, so running this "
                    "batch again would invite (and charge for) them again; give each an external_id."
                    in result.content[0].text), result.content[0].text
        with_ids = await client.call_tool("start_interviews", {"respondents": [{"external_id": "e2"}]})
        assert "Warning" not in with_ids.content[0].text


def test_every_dependency_has_lower_and_upper_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    for spec in specs:
        assert re.search(r">=\s*[0-9]", spec) and re.search(r"<\s*[0-9]", spec), f"unbounded: {spec!r}"
