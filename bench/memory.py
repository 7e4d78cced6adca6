"""Memory of a stdio koji-mcp server: idle, and after 1,000 start_interview calls (run: `make bench-memory`).

koji-mcp (`python -m koji_mcp serve`, ledger on disk) and the thin forwarder from bench/calls.py
(one-tool MCPServer on the same SDK, the baseline) run side by side as stdio subprocesses under
ClientSession, against one sandbox process. VmRSS and VmHWM (peak RSS) are read from
/proc/<pid>/status of each child: once idle after initialize + tools/list, then after every 250
calls (sent in alternating blocks of 50 to both). Growth beyond a few MB over 1,000 calls would be a
leak. Prints a Markdown table; --write appends it to bench/RESULTS.md. Exit 1 if koji-mcp grows
by more than --max-growth MB (default 5).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calls import (  # noqa: E402
    append_results,
    heading,
    koji_command,
    mcp_caller,
    sandbox_process,
    stdio_session,
    thin_command,
)

SERVERS = ("koji-mcp", "thin forwarder")


def status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in kB."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


async def measure(base_url: str, tmp: Path, calls: int, step: int, block: int, settle: float
                  ) -> dict[str, list[tuple[int, dict[str, int]]]]:
    samples: dict[str, list[tuple[int, dict[str, int]]]] = {name: [] for name in SERVERS}
    async with contextlib.AsyncExitStack() as stack:
        sessions = {}
        for name, (command, env) in {
            "koji-mcp": koji_command(str(tmp / "state"), base_url),
            "thin forwarder": thin_command(base_url),
        }.items():
            errlog = stack.enter_context(open(tmp / f"{name.replace(' ', '_')}.log", "w"))
            sessions[name] = await stack.enter_async_context(stdio_session(command, env, errlog))
        await anyio.sleep(settle)
        for name, (_, pid) in sessions.items():
            samples[name].append((0, status_kb(pid)))
        done = 0
        while done < calls:
            for session, _ in sessions.values():
                call = mcp_caller(session)
                for _ in range(block):
                    await call()
            done += block
            if done % step == 0 or done >= calls:
                await anyio.sleep(settle)
                for name, (_, pid) in sessions.items():
                    samples[name].append((done, status_kb(pid)))
    return samples


def report(samples: dict[str, list[tuple[int, dict[str, int]]]], calls: int) -> tuple[str, float]:
    mb = lambda kb: kb / 1024  # noqa: E731
    thin = samples["thin forwarder"]
    lines = [
        heading("Memory (stdio server process)"),
        "VmRSS / VmHWM of each server process from /proc/<pid>/status, idle (after initialize + tools/list) and "
        "after every block of start_interview calls; both servers side by side against one sandbox process.",
        "",
        "| server | idle RSS (MB) | idle peak (MB) | RSS after " + f"{calls:,}" + " calls (MB) | peak (MB) | "
        "growth (MB) | idle RSS ratio to thin |",
        "|---|---|---|---|---|---|---|",
    ]
    thin_idle = thin[0][1]["VmRSS"]
    growth = {}
    for name in SERVERS:
        series = samples[name]
        idle, last = series[0][1], series[-1][1]
        growth[name] = mb(last["VmRSS"] - idle["VmRSS"])
        lines.append(f"| {name} | {mb(idle['VmRSS']):.1f} | {mb(idle['VmHWM']):.1f} | {mb(last['VmRSS']):.1f} | "
                     f"{mb(last['VmHWM']):.1f} | {growth[name]:+.1f} | {idle['VmRSS'] / thin_idle:.2f} |")
    lines += ["", "RSS (MB) by calls served: " + "; ".join(
        f"{name}: " + ", ".join(f"{n}→{mb(s['VmRSS']):.1f}" for n, s in samples[name]) for name in SERVERS),
        "", f"koji-mcp grew {growth['koji-mcp']:+.1f} MB over {calls:,} calls "
        f"(the thin forwarder {growth['thin forwarder']:+.1f} MB)."]
    return "\n".join(lines), growth["koji-mcp"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1000, help="calls per server (default 1000)")
    parser.add_argument("--step", type=int, default=250, help="sample RSS every N calls (default 250)")
    parser.add_argument("--max-growth", type=float, default=5.0, help="MB of growth that fails the run (default 5)")
    parser.add_argument("--write", action="store_true", help="append the table to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="koji-bench-mem-") as tmp, sandbox_process() as base_url:
        samples = anyio.run(measure, base_url, Path(tmp), args.calls, args.step, 50, 0.5)
    text, growth = report(samples, args.calls)
    print(text)
    if args.write:
        append_results(text)
    return 0 if growth <= args.max_growth else 1


if __name__ == "__main__":
    raise SystemExit(main())
