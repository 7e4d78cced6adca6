"""Batch throughput against the sandbox (not a test: run with `make bench-batch` or `python bench/batch.py`).

Four runs, each against a fresh sandbox limited to 600 requests/minute:
  A. 300 starts through the real MCP client (start_interviews, which makes it a background job):
     how fast the tool call returns, then wall time until get_batch says done, as a ratio to the
     rate-limit floor (300 / 600 per min = 30 s), 429s seen, duplicates, failures.
  B. the same with 429s injected by the sandbox: every one waited out and retried, no duplicates.
  C. `koji-mcp batch` killed with SIGKILL halfway, then rerun: no participant started twice.
  D. a background job in `koji-mcp serve` (stdio) killed with SIGKILL halfway; the server is
     started again and resumes the job by itself: every respondent started exactly once.
Prints a Markdown table (the same one goes into bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
from mcp import Client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from koji_mcp.config import Settings  # noqa: E402
from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer  # noqa: E402
from koji_mcp.server.app import build_server  # noqa: E402

START = "/api/v1/interviews/start"
LIMIT = 600


def log(base_url: str) -> list[dict]:
    return httpx.get(f"{base_url}/_sandbox/requests", timeout=30).json()["requests"]


def analyse(base_url: str) -> dict:
    entries = [e for e in log(base_url) if e["path"] == START]
    ok = Counter(e["json"]["respondent"]["external_id"] for e in entries if e["status"] == 201)
    return {
        "requests": len(entries),
        "started": sum(ok.values()),
        "duplicates": sum(n - 1 for n in ok.values() if n > 1),
        "429s": sum(1 for e in entries if e["status"] == 429),
        "failures": sum(1 for e in entries if e["status"] not in (201, 429)),
    }


def people(n: int, prefix: str) -> list[dict]:
    return [{"external_id": f"{prefix}{i}", "display_name": f"Person {i}"} for i in range(n)]


async def mcp_batch(base_url: str, n: int, state: str) -> tuple[float, dict, float]:
    """Returns (wall time until every start is done, final counts, time the tool call took)."""
    settings = Settings(api_key=DEMO_KEY, base_url=base_url, state_dir=state)
    async with Client(build_server(settings), mode="legacy") as client:
        began = time.perf_counter()
        result = await client.call_tool("start_interviews", {"respondents": people(n, "b")})
        call = time.perf_counter() - began
        counts = result.structured_content["counts"]
        batch_id = result.structured_content.get("batch_id")
        while batch_id:
            state_now = (await client.call_tool("get_batch", {"batch_id": batch_id})).structured_content
            if state_now["status"] != "running":
                counts = state_now["counts"]
                break
            await anyio.sleep(0.05)
        elapsed = time.perf_counter() - began
    return elapsed, counts, call


def run_a(n: int) -> dict:
    with SandboxServer(SandboxConfig(rate_limit=LIMIT)) as sandbox, tempfile.TemporaryDirectory() as state:
        elapsed, counts, call = anyio.run(mcp_batch, sandbox.base_url, n, state)
        return {"run": f"A: {n} starts via start_interviews (job)", "wall_s": elapsed, **analyse(sandbox.base_url),
                "tool_counts": counts, "call_s": call}


async def serve_job(base_url: str, n: int, state: str, kill_after: float) -> tuple[float, dict, int]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {"KOJI_API_KEY": DEMO_KEY, "KOJI_BASE_URL": base_url, "KOJI_MCP_STATE_DIR": state,
           "PYTHONPATH": str(ROOT / "src")}
    params = StdioServerParameters(command=sys.executable, args=["-m", "koji_mcp", "serve"], env=env)
    began = time.perf_counter()
    async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            r = await session.call_tool("start_interviews", {"respondents": people(n, "d")})
            batch_id = r.structured_content["batch_id"]
            await anyio.sleep(kill_after)
            for pid in _pids(state):
                os.kill(pid, signal.SIGKILL)
    before = analyse(base_url)["started"]
    async with stdio_client(params, errlog=open(os.devnull, "w")) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            while True:
                done = (await session.call_tool("get_batch", {"batch_id": batch_id})).structured_content
                if done["status"] != "running":
                    break
                await anyio.sleep(0.2)
    return time.perf_counter() - began, done, before


def _pids(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return [pid for pid in found if pid != os.getpid()]


def run_d(n: int, kill_after: float) -> dict:
    with SandboxServer(SandboxConfig(rate_limit=LIMIT)) as sandbox, tempfile.TemporaryDirectory() as tmp:
        elapsed, done, before = anyio.run(serve_job, sandbox.base_url, n, str(Path(tmp) / "state-d"), kill_after)
        return {"run": f"D: {n} as a job in serve, SIGKILL at {kill_after:.0f} s, restart", "wall_s": elapsed,
                **analyse(sandbox.base_url), "started_before_kill": before, "job": done}


def run_b(n: int, injected: int) -> dict:
    with SandboxServer(SandboxConfig(rate_limit=LIMIT)) as sandbox, tempfile.TemporaryDirectory() as state:
        for _ in range(injected):
            httpx.post(f"{sandbox.base_url}/_sandbox/faults", json={
                "path": START, "status": 429, "headers": {"Retry-After": "1"},
                "json": {"error": "rate_limited", "message": "Rate limit exceeded."}})
        elapsed, counts, _ = anyio.run(mcp_batch, sandbox.base_url, n, state)
        return {"run": f"B: {n} starts, {injected} injected 429s", "wall_s": elapsed, **analyse(sandbox.base_url),
                "tool_counts": counts}


def run_c(n: int, kill_after: float) -> dict:
    with SandboxServer(SandboxConfig(rate_limit=LIMIT)) as sandbox, tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "people.csv"
        csv_path.write_text("external_id,display_name\n" + "".join(f"c{i},Person {i}\n" for i in range(n)))
        env = {**os.environ, "KOJI_API_KEY": DEMO_KEY, "KOJI_BASE_URL": sandbox.base_url,
               "KOJI_MCP_STATE_DIR": str(Path(tmp) / "state"), "PYTHONPATH": str(ROOT / "src")}
        command = [sys.executable, "-m", "koji_mcp", "batch", str(csv_path)]
        began = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(kill_after)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        before = analyse(sandbox.base_url)["started"]
        resumed = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - began
        summary = next((line for line in resumed.stdout.splitlines() if "participant(s)" in line), resumed.stdout[-200:])
        return {"run": f"C: {n} via CLI, SIGKILL at {kill_after:.0f} s, rerun", "wall_s": elapsed,
                **analyse(sandbox.base_url), "started_before_kill": before, "rerun": summary}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    floor = args.n / LIMIT * 60
    rows = [run_a(args.n), run_b(args.n, 5), run_c(args.n, floor / 2), run_d(args.n, floor / 2)]
    lines = [
        f"### Batch throughput — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        f"Sandbox limit {LIMIT}/min; floor for {args.n} starts if spread evenly = {floor:.0f} s.",
        "",
        "| run | wall (s) | ratio to floor | started | duplicates | 429s seen | failures |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['run']} | {r['wall_s']:.1f} | {r['wall_s'] / floor:.2f} | {r['started']} | "
                     f"{r['duplicates']} | {r['429s']} | {r['failures']} |")
    c = rows[2]
    lines.append("")
    lines.append(f"Run C: {c['started_before_kill']} started before the kill; rerun said: `{c['rerun']}`")
    a, d = rows[0], rows[3]
    lines.append(f"Run A: the start_interviews call returned in {a['call_s']:.2f} s (goal < 2 s) with a batch_id; "
                 f"final counts {a['tool_counts']}.")
    lines.append(f"Run D: {d['started_before_kill']} started before the kill; the restarted server resumed the job "
                 f"by itself (resumed={d['job'].get('resumed')}); final status {d['job']['status']}, counts "
                 f"{d['job']['counts']}.")
    table = "\n".join(lines)
    print(table)
    if args.write:
        with open(ROOT / "bench" / "RESULTS.md", "a") as handle:
            handle.write("\n" + table + "\n")
    ok = (all(r["duplicates"] == 0 and r["failures"] == 0 for r in rows) and rows[0]["wall_s"] / floor <= 1.05
          and rows[0]["call_s"] < 2 and rows[0]["429s"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
