"""HTTP load: 50 concurrent authenticated streamable-HTTP clients x 20 calls against the sandbox.

Run with `make load` (CI runs it too). koji-mcp is a real subprocess with one auth token per client;
every client starts interviews, relays messages, reads and lists. Checks: 0 errors, 0 cross-client
leaks (each client lists exactly its own interviews and cannot read another's). Reports p50/p99
latency per call and the server's peak RSS. Exit code 1 on any error or leak.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def token(i: int) -> str:
    return f"load-client-{i:02d}-0123456789abcdef"


async def one_client(port: int, index: int, calls: int, latencies: list[float], problems: list[str]) -> list[str]:
    hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token(index)}"}, timeout=60)
    mine: list[str] = []

    async def call(c: Client, name: str, args: dict) -> dict:
        began = time.perf_counter()
        result = await c.call_tool(name, args)
        latencies.append(time.perf_counter() - began)
        if result.is_error:
            problems.append(f"client {index} {name}: {result.content[0].text[:200]}")
            return {}
        return result.structured_content or {}

    async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=hc), mode="legacy") as c:
        for n in range(calls):
            step = n % 4
            if step == 0 or not mine:
                started = await call(c, "start_interview", {"respondent": {"external_id": f"c{index}-{n}"}})
                if started:
                    mine.append(started["interview_id"])
            elif step == 1:
                await call(c, "send_interview_message", {"interview_id": mine[-1], "content": f"answer {n}"})
            elif step == 2:
                await call(c, "get_interview", {"interview_id": mine[-1]})
            else:
                listed = await call(c, "list_interviews", {"limit": 100})
                ids = {i["interview_id"] for i in listed.get("interviews", [])}
                if ids != set(mine):
                    problems.append(f"client {index} LEAK/loss: lists {len(ids)} interviews, started {len(mine)}")
    return mine


async def run(port: int, clients: int, calls: int) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    problems: list[str] = []
    results: dict[int, list[str]] = {}

    async def worker(i: int) -> None:
        results[i] = await one_client(port, i, calls, latencies, problems)

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for i in range(clients):
            group.start_soon(worker, i)
    wall = time.perf_counter() - began
    # cross-client reads: client 0 must not be able to read client 1's interview
    if clients > 1 and results.get(1):
        hc = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token(0)}"}, timeout=60)
        async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=hc), mode="legacy") as c:
            foreign = await c.call_tool("send_interview_message", {"interview_id": results[1][0], "content": "x"})
            if not foreign.is_error:
                problems.append("LEAK: client 0 could message client 1's interview")
    return latencies, problems, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    port = free_port()
    with SandboxServer(SandboxConfig(rate_limit=10**6)) as sandbox, tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "KOJI_API_KEY": DEMO_KEY, "KOJI_BASE_URL": sandbox.base_url,
               "KOJI_MCP_STATE_DIR": state, "PYTHONPATH": str(ROOT / "src"),
               "KOJI_MCP_AUTH_TOKEN": ",".join(f"client{i}={token(i)}" for i in range(args.clients))}
        server = subprocess.Popen([sys.executable, "-m", "koji_mcp", "serve", "--transport", "streamable-http",
                                   "--port", str(port), "--log-level", "WARNING"], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            idle_rss = peak_rss_mb(server.pid)
            latencies, problems, wall = anyio.run(run, port, args.clients, args.calls)
            rss = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(10)
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
    table = "\n".join([
        f"### HTTP load — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {os.cpu_count()} cores",
        f"{args.clients} authenticated streamable-HTTP clients x {args.calls} calls, one koji-mcp process, sandbox upstream.",
        "",
        "| calls | errors+leaks | wall (s) | calls/s | p50 (ms) | p99 (ms) | server RSS idle → peak (MB) |",
        "|---|---|---|---|---|---|---|",
        f"| {len(ms)} | {len(problems)} | {wall:.1f} | {len(ms) / wall:.0f} | {statistics.median(ms):.1f} | {p99:.1f} | "
        f"{idle_rss:.0f} → {rss:.0f} |",
    ])
    print(table)
    for problem in problems[:20]:
        print("  problem:", problem)
    if args.write:
        with open(ROOT / "bench" / "RESULTS.md", "a") as handle:
            handle.write("\n" + table + "\n")
    return 1 if problems or len(ms) != args.clients * args.calls else 0


if __name__ == "__main__":
    raise SystemExit(main())
