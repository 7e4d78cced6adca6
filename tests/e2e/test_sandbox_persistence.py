"""The sandbox across processes: `serve --sandbox` once per call and `batch --sandbox` reruns behave like
one Koji, in their own state dir; the real ledger is never touched."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.conftest import ROOT, koji_mcp_command, subprocess_env

pytestmark = pytest.mark.anyio


async def call_once(state: Path, tool: str, arguments: dict, errlog) -> tuple[bool, dict | None, str]:
    """One whole `koji-mcp serve --sandbox` process for one tool call (as the Inspector CLI does)."""
    command, *args = koji_mcp_command()
    params = StdioServerParameters(command=command, args=[*args, "serve", "--sandbox"], cwd=str(ROOT),
                                   env=subprocess_env(KOJI_MCP_STATE_DIR=str(state)))
    async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(tool, arguments)
    return result.is_error, result.structured_content, result.content[0].text


async def test_a_second_serve_sandbox_process_continues_the_first_ones_interview(tmp_path) -> None:
    state = tmp_path / "state"
    errlog = (tmp_path / "stderr.log").open("w+")
    error, started, text = await call_once(state, "start_interview", {"respondent": {"external_id": "e1"}}, errlog)
    assert not error, text
    interview_id = started["interview_id"]
    error, sent, text = await call_once(state, "send_interview_message",
                                        {"interview_id": interview_id, "content": "It went well."}, errlog)
    assert not error, text
    assert sent["interview_status"] == "active" and "How easy was it to get set up?" in text
    error, got, text = await call_once(state, "get_interview",
                                       {"interview_id": interview_id, "include_transcript": True}, errlog)
    assert not error, text
    assert got["messages_count"] == 3
    assert [m["role"] for m in got["transcript"]] == ["interviewer", "respondent", "interviewer"]
    # everything of the sandbox lives in STATE/sandbox/; the real ledger was never created
    assert sorted(p.name for p in state.iterdir()) == ["sandbox"]
    kept = json.loads((state / "sandbox" / "sandbox-state.json").read_text())
    assert [i["interview_id"] for i in kept["interviews"]] == [interview_id]
    assert (state / "sandbox" / "sandbox-state.json").stat().st_mode & 0o077 == 0  # holds session tokens


def run_batch(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([*koji_mcp_command(), "batch", *args], env=subprocess_env(**env), cwd=cwd,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_batch_sandbox_twice_starts_nobody_twice_and_leaves_the_real_ledger_alone(tmp_path) -> None:
    (tmp_path / "p.csv").write_text("external_id,display_name\nu1,Ann\nu2,Bob\n")
    home = tmp_path / "home"  # the default state dir would be HOME/.local/share/koji-mcp
    first = run_batch(["p.csv", "--sandbox", "--state-dir", "X"], tmp_path, HOME=str(home))
    assert first.returncode == 0, first.stderr
    ids = [r["interview_id"] for r in rows(tmp_path / "p.results.csv")]
    assert all(ids) and len(set(ids)) == 2
    second = run_batch(["p.csv", "--sandbox", "--state-dir", "X"], tmp_path, HOME=str(home))
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1] == "2 participant(s): 2 skipped. Results: p.results.csv"
    assert [(r["outcome"], r["interview_id"]) for r in rows(tmp_path / "p.results.csv")] == [("skipped", i) for i in ids]
    kept = json.loads((tmp_path / "X" / "sandbox" / "sandbox-state.json").read_text())
    assert sorted(i["interview_id"] for i in kept["interviews"]) == sorted(ids)  # the sandbox saw 2 starts in all
    assert sorted(p.name for p in (tmp_path / "X").iterdir()) == ["sandbox"]
    assert not home.exists()


def test_dry_run_needs_no_key_and_never_replaces_results(tmp_path) -> None:
    (tmp_path / "p.csv").write_text("external_id,display_name\nu1,Ann\nu2,Bob\n")
    state = str(tmp_path / "state")
    dry = run_batch(["p.csv", "--dry-run"], tmp_path, KOJI_MCP_STATE_DIR=state,
                    KOJI_BASE_URL="http://127.0.0.1:9")  # no key, and nothing listens there
    assert dry.returncode == 0, dry.stderr
    assert dry.stderr == "" and "serve --sandbox" not in dry.stdout
    assert dry.stdout.splitlines()[-1] == "dry run: 2 participant(s): 2 would start. Results: p.dry-run.csv"
    assert [r["outcome"] for r in rows(tmp_path / "p.dry-run.csv")] == ["would_start"] * 2

    real = run_batch(["p.csv", "--sandbox"], tmp_path, KOJI_MCP_STATE_DIR=state)
    assert real.returncode == 0, real.stderr
    before = (tmp_path / "p.results.csv").read_bytes()
    # a dry run pointed at real results refuses (one line, exit 2) unless told to overwrite
    dry = run_batch(["p.csv", "--dry-run", "--sandbox", "--out", "p.results.csv"], tmp_path, KOJI_MCP_STATE_DIR=state)
    assert dry.returncode == 2 and dry.stdout == ""
    assert dry.stderr == ("koji-mcp batch: p.results.csv already lists 2 started interviews; choose another --out, "
                          "or pass --overwrite to replace it\n")
    assert (tmp_path / "p.results.csv").read_bytes() == before
    # so does a real run whose ledger does not know them (here: another state dir), before sending anything
    other = run_batch(["p.csv", "--sandbox"], tmp_path, KOJI_MCP_STATE_DIR=str(tmp_path / "other"))
    assert other.returncode == 2 and "--overwrite" in other.stderr
    assert not (tmp_path / "other" / "sandbox" / "sandbox-state.json").exists()
    assert (tmp_path / "p.results.csv").read_bytes() == before
    forced = run_batch(["p.csv", "--sandbox", "--overwrite"], tmp_path, KOJI_MCP_STATE_DIR=str(tmp_path / "other"))
    assert forced.returncode == 0 and "2 started" in forced.stdout


def test_batch_without_a_key_offers_the_batch_ways_to_try(tmp_path) -> None:
    (tmp_path / "p.csv").write_text("external_id\nu1\n")
    proc = run_batch(["p.csv"], tmp_path, KOJI_MCP_STATE_DIR=str(tmp_path / "state"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("koji-mcp batch: KOJI_API_KEY is not set: export your Koji API key (pk_live_…, Dashboard > "
                           "Profile > API Keys), or add --sandbox (a local Koji) or --dry-run (sends nothing) to try "
                           "koji-mcp without an account\n")


def test_a_damaged_sandbox_state_file_is_one_line_naming_it(tmp_path) -> None:
    state = tmp_path / "state" / "sandbox"
    state.mkdir(parents=True)
    (state / "sandbox-state.json").write_text("{not json")
    proc = subprocess.run([*koji_mcp_command(), "serve", "--sandbox"], capture_output=True, text=True, timeout=30,
                          env=subprocess_env(KOJI_MCP_STATE_DIR=str(tmp_path / "state")), stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"koji-mcp: cannot start the sandbox: the sandbox state file {state / 'sandbox-state.json'} "
                           "cannot be read (")
    assert line.endswith("delete it to start the sandbox afresh")
