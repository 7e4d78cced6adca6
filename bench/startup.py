"""Startup of koji-mcp over stdio vs the official reference server (run: `make bench-startup`).

Measures spawn → `initialize` answered → `tools/list` answered, over raw stdio pipes (the same
client code for every server), for:
  koji-mcp         `python -m koji_mcp serve` with KOJI_API_KEY, KOJI_BASE_URL (an idle local
                   sandbox) and KOJI_MCP_STATE_DIR (a temp dir), as a desktop host launches it;
  mcp-server-time  the official reference server, pip-installed into a throwaway venv made here
                   (same Python; `--baseline-venv DIR` reuses one); the baseline of the ratio;
  bare MCPServer   a one-tool MCPServer on koji-mcp's SDK: the floor any server on this SDK pays.
A warm-up round (which also writes bytecode caches), then 12 rounds; koji-mcp and mcp-server-time
alternate order each round; the figure is the median of per-round ratios koji-mcp / mcp-server-time
(goal ≤ 1.05). Then `-X importtime` runs price koji-mcp's own imports and list the modules that
serve imports beyond what a bare MCPServer needs, a cProfile run shows the startup work after
imports, and the sandbox's request log proves no upstream request is made before the first call.
Prints Markdown; --write appends it to bench/RESULTS.md. Exit 1 if the ratio exceeds 1.05.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from koji_mcp.sandbox import DEMO_KEY, SandboxServer  # noqa: E402

PYTHON = sys.executable
GOAL = 1.05
PROTOCOL = "2025-11-25"  # what desktop hosts negotiate today

MINIMAL_SERVER = '''
from mcp.server.mcpserver import MCPServer

mcp = MCPServer("minimal", version="0", log_level="WARNING")

@mcp.tool()
def echo(text: str) -> str:
    """Echo the text."""
    return text

mcp.run()
'''

# Modules that `serve` should not need before answering initialize, and why (prefix match).
NOT_NEEDED: dict[str, str] = {
    "koji_mcp.sandbox": "only `serve --sandbox` and `koji-mcp sandbox` use it",
    "koji_mcp.interviews.batches": "batch planning: only when start_interviews runs",
    "koji_mcp.cli.participants": "CSV reading: only `koji-mcp batch`",
    "koji_mcp.cli.batch": "another subcommand",
    "koji_mcp.cli.sandbox": "another subcommand",
    "koji_mcp.cli.doctor": "another subcommand",
    "koji_mcp.cli.host_config": "another subcommand",
    "koji_mcp.cli.demo": "another subcommand",
    "koji_mcp.server.auth": "bearer auth: only HTTP transports with --auth-token, never stdio",
    "koji_mcp.interviews.views": "shapes Koji's interview: only inside get_interview and the resource",
    "koji_mcp.koji.replies": "parses message replies: only inside send_interview_message",
    "csv": "CSV: only `koji-mcp batch`",
    "httpx": "Koji HTTP client: only needed at the first Koji request (the SDK itself uses httpx2)",
    "httpcore": "pulled in by httpx",
    "h11": "pulled in by httpx",
    "pygments": "httpx/__init__ tries its optional CLI (httpx/_main.py: click, pygments, rich) and gives up "
                "at rich; pygments is only there in the test extra",
    "uvicorn": "HTTP transports only",
}


# -- one spawn ------------------------------------------------------------------------------------


def _send(proc: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message).encode() + b"\n")
    proc.stdin.flush()


def _response(proc: subprocess.Popen[bytes], request_id: int) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"server closed stdout before answering request {request_id}")
        message = json.loads(line)
        if message.get("id") == request_id:
            if "error" in message:
                raise RuntimeError(f"server answered request {request_id} with {message['error']}")
            return message["result"]


def handshake(command: list[str], env: dict[str, str], stderr: IO[Any] | int = subprocess.DEVNULL,
              timeout: float = 60) -> tuple[float, int]:
    """Seconds from spawn until tools/list is answered, and the number of tools."""
    began = time.perf_counter()
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env,
                            cwd=str(ROOT))
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        _send(proc, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "bench", "version": "0"}}})
        _response(proc, 1)
        _send(proc, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        tools = _response(proc, 2)["tools"]
        elapsed = time.perf_counter() - began
    finally:
        watchdog.cancel()
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
    return elapsed, len(tools)


def base_env(**extra: str) -> dict[str, str]:
    # Bytecode caches are written and used, as for an installed package.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("KOJI") and k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(extra)
    return env


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    times: list[float] = field(default_factory=list)
    tools: int = 0


# -- the reference server -------------------------------------------------------------------------


@contextlib.contextmanager
def reference_venv(reuse: str | None) -> Iterator[tuple[str | None, str]]:
    """(python of a venv with mcp-server-time, or None) and a note saying what happened."""
    if reuse:
        python = str(Path(reuse) / "bin" / "python")
        yield (python if Path(python).exists() else None), f"reused venv {reuse}"
        return
    with tempfile.TemporaryDirectory(prefix="koji-bench-ref-") as tmp:
        venv = Path(tmp) / "venv"
        began = time.perf_counter()
        made = subprocess.run([PYTHON, "-m", "venv", str(venv)], capture_output=True, text=True)
        python = str(venv / "bin" / "python")
        if made.returncode != 0:
            yield None, f"python -m venv failed: {made.stderr.strip()[-300:]}"
            return
        installed = subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "mcp-server-time"],
            capture_output=True, text=True)
        if installed.returncode != 0:
            yield None, f"pip install mcp-server-time failed: {installed.stderr.strip()[-300:]}"
            return
        versions = subprocess.run([python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
                                  capture_output=True, text=True)
        wanted = {"mcp-server-time", "mcp"}
        found = {p["name"]: p["version"] for p in json.loads(versions.stdout or "[]") if p["name"] in wanted}
        yield python, (f"throwaway venv, {', '.join(f'{k} {v}' for k, v in sorted(found.items()))}, "
                       f"made in {time.perf_counter() - began:.0f} s")


# -- -X importtime ---------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    depth: int
    self_us: int
    cumulative_us: int
    children: list[Module] = field(default_factory=list)


def parse_importtime(text: str) -> list[Module]:
    """The import tree (roots in import order) from `python -X importtime` output."""
    stack: list[Module] = []
    for line in text.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, raw = line[len("import time:"):].split("|", 2)
        raw = raw.rstrip()[1:]  # one space after the bar, then two per nesting level
        depth = (len(raw) - len(raw.lstrip(" "))) // 2
        module = Module(raw.strip(), depth, int(self_us), int(cumulative))
        while stack and stack[-1].depth > depth:
            module.children.insert(0, stack.pop())
        stack.append(module)
    return stack


def walk(modules: list[Module], owner: str | None = None) -> Iterator[tuple[Module, str | None]]:
    """Every module with its nearest koji_mcp importer (itself if it is one)."""
    for module in modules:
        mine = module.name if module.name.startswith("koji_mcp") else owner
        yield module, mine
        yield from walk(module.children, mine)


def importtime_run(server: Server, stderr_path: Path) -> list[Module]:
    command = [server.command[0], "-X", "importtime", *server.command[1:]]
    with open(stderr_path, "w") as stderr:
        handshake(command, server.env, stderr=stderr)
    return parse_importtime(stderr_path.read_text())


def flag(name: str) -> str | None:
    best = max((prefix for prefix in NOT_NEEDED if name == prefix or name.startswith(prefix + ".")),
               key=len, default=None)
    return NOT_NEEDED[best] if best else None


def import_report(koji_runs: list[list[Module]], floor_runs: list[list[Module]], ref_runs: list[list[Module]]
                  ) -> list[str]:
    def total(run: list[Module]) -> int:
        return sum(m.self_us for m, _ in walk(run))

    def names(run: list[Module]) -> set[str]:
        return {m.name for m, _ in walk(run)}

    # Per koji_mcp module: own time and the time of what it imports first (not another koji_mcp module).
    own: dict[str, list[int]] = defaultdict(list)
    pulled: dict[str, list[int]] = defaultdict(list)
    pulled_pkgs: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    floor_names = names(floor_runs[0])
    for run in koji_runs:
        o: dict[str, int] = defaultdict(int)
        p: dict[str, int] = defaultdict(int)
        pk: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for module, owner in walk(run):
            if owner is None:
                continue
            if module.name == owner:
                o[owner] += module.self_us
            elif module.name not in floor_names:  # what a bare MCPServer imports anyway is not charged
                p[owner] += module.self_us
                pk[owner][module.name.split(".")[0]] += module.self_us
        for key in set(o) | set(p):
            own[key].append(o[key])
            pulled[key].append(p[key])
            for pkg, us in pk[key].items():
                pulled_pkgs[key][pkg].append(us)
    med = statistics.median
    koji_total = med(total(r) for r in koji_runs)
    floor_total = med(total(r) for r in floor_runs)
    lines = [
        f"Import time (`-X importtime`, sum of self times, median of {len(koji_runs)} runs): koji-mcp serve "
        f"{koji_total / 1000:.0f} ms; bare MCPServer {floor_total / 1000:.0f} ms"
        + (f"; mcp-server-time {med(total(r) for r in ref_runs) / 1000:.0f} ms" if ref_runs else "")
        + f". koji-mcp's imports beyond the bare SDK server: {(koji_total - floor_total) / 1000:+.0f} ms.",
        "",
        "Top koji_mcp modules by import cost: own code, plus the modules a bare MCPServer does not import "
        "that this module is the first to import:",
        "",
        "| koji_mcp module | own (ms) | imports first (ms) | of which | needed before initialize? |",
        "|---|---|---|---|---|",
    ]
    rows = sorted(own, key=lambda k: -(med(own[k]) + med(pulled[k])))
    for key in rows[:12]:
        pkgs = sorted(((pkg, med(v)) for pkg, v in pulled_pkgs[key].items()), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{pkg} {us / 1000:.1f}" for pkg, us in pkgs if us >= 500) or "—"
        why = flag(key)
        lines.append(f"| {key} | {med(own[key]) / 1000:.1f} | {med(pulled[key]) / 1000:.1f} | {shown} | "
                     f"{'no: ' + why if why else 'yes'} |")
    # Modules imported by koji-mcp serve but not by a bare MCPServer, grouped by top-level package.
    extra: dict[str, list[int]] = defaultdict(list)
    extra_names: dict[str, set[str]] = defaultdict(set)
    for run in koji_runs:
        sums: dict[str, int] = defaultdict(int)
        for module, _ in walk(run):
            if module.name not in floor_names and not module.name.startswith("koji_mcp"):
                top = module.name.split(".")[0]
                sums[top] += module.self_us
                extra_names[top].add(module.name)
        for top, us in sums.items():
            extra[top].append(us)
    lines += ["", "Third-party and stdlib modules koji-mcp serve imports that a bare MCPServer does not:", "",
              "| package | modules | ms | needed before initialize? |", "|---|---|---|---|"]
    for top in sorted(extra, key=lambda t: -med(extra[t])):
        if med(extra[top]) < 300:
            continue
        why = flag(top)
        lines.append(f"| {top} | {len(extra_names[top])} | {med(extra[top]) / 1000:.1f} | "
                     f"{'no: ' + why if why else 'yes'} |")
    lazy = sorted({m.name for run in koji_runs for m, _ in walk(run)
                   if m.name.startswith("koji_mcp") and flag(m.name)})
    lines += ["", "koji_mcp modules imported at serve startup that need not be: "
              + (", ".join(f"`{n}`" for n in lazy) if lazy else "none") + "."]
    return lines


# -- cProfile of startup work after imports -------------------------------------------------------


def startup_profile(server: Server, out: Path) -> list[str]:
    command = [server.command[0], "-m", "cProfile", "-o", str(out), *server.command[1:]]
    handshake(command, server.env)
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    rows = []
    for (file, line, name), (_, ncalls, _, cumtime, _) in stats.items():
        interesting = ("/koji_mcp/" in file and name not in ("<module>", "<listcomp>", "main")) or (
            name == "create_default_context")
        if interesting and cumtime >= 0.002:
            where = file.split("/src/")[-1].split("site-packages/")[-1] if "/koji_mcp/" in file else Path(file).name
            rows.append((cumtime, ncalls, f"`{name}` {where}:{line}"))
    rows.sort(reverse=True)
    lines = ["", "Startup work after imports (cProfile of one koji-mcp start; profiler overhead inflates times):",
             "", "| function | calls | cumulative (ms) |", "|---|---|---|"]
    lines += [f"| {label} | {calls} | {cum * 1000:.1f} |" for cum, calls, label in rows[:12]]
    return lines


# -- main ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=12, help="measured rounds after the warm-up (default 12)")
    parser.add_argument("--importtime-runs", type=int, default=3, help="-X importtime runs per server (default 3)")
    parser.add_argument("--baseline-venv", metavar="DIR", help="reuse a venv that has mcp-server-time installed")
    parser.add_argument("--write", action="store_true", help="append the result to bench/RESULTS.md")
    args = parser.parse_args()

    with SandboxServer() as sandbox, tempfile.TemporaryDirectory(prefix="koji-bench-start-") as tmp, \
            reference_venv(args.baseline_venv) as (ref_python, ref_note):
        tmpdir = Path(tmp)
        koji = Server("koji-mcp", [PYTHON, "-m", "koji_mcp", "serve"], base_env(
            KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmpdir / "state")))
        floor = Server("bare MCPServer (1 tool)", [PYTHON, "-c", MINIMAL_SERVER], base_env())
        ref = Server("mcp-server-time", [ref_python, "-m", "mcp_server_time"], base_env()) if ref_python else None
        servers = [s for s in (koji, ref, floor) if s is not None]

        for server in servers:  # warm-up: bytecode, page cache
            server.tools = handshake(server.command, server.env)[1]
        ratios: list[float] = []
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else servers[::-1]
            for server in order:
                server.times.append(handshake(server.command, server.env)[0])
            if ref:
                ratios.append(koji.times[-1] / ref.times[-1])

        koji_runs = [importtime_run(koji, tmpdir / f"koji-{i}.txt") for i in range(args.importtime_runs)]
        floor_runs = [importtime_run(floor, tmpdir / f"floor-{i}.txt") for i in range(args.importtime_runs)]
        ref_runs = [importtime_run(ref, tmpdir / f"ref-{i}.txt") for i in range(args.importtime_runs)] if ref else []
        profile_lines = startup_profile(koji, tmpdir / "startup.prof")
        upstream = httpx.get(f"{sandbox.base_url}/_sandbox/requests").json()["requests"]

    spawns = (1 + args.rounds + args.importtime_runs + 1)
    baseline = ref or floor
    lines = [
        f"### Startup over stdio — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        f"Spawn → `initialize` → `tools/list` answered, raw JSON-RPC over pipes. 1 warm-up + {args.rounds} "
        "rounds, koji-mcp and mcp-server-time in alternating order. Reference server: "
        + (ref_note if ref else f"SKIPPED ({ref_note}); ratios are to the bare MCPServer instead") + ".",
        "",
        "| server | tools | median (ms) | min (ms) | max (ms) | ratio of medians to " + baseline.name + " |",
        "|---|---|---|---|---|---|",
    ]
    for server in servers:
        lines.append(f"| {server.name} | {server.tools} | {statistics.median(server.times) * 1000:.0f} | "
                     f"{min(server.times) * 1000:.0f} | {max(server.times) * 1000:.0f} | "
                     f"{statistics.median(server.times) / statistics.median(baseline.times):.2f} |")
    to_floor = statistics.median(a / b for a, b in zip(koji.times, floor.times, strict=True))
    ratio = statistics.median(ratios) if ratios else to_floor
    lines += [
        "",
        f"Median of per-round ratios koji-mcp / {baseline.name}: **{ratio:.3f}** "
        f"(goal ≤ {GOAL}: {'met' if ratio <= GOAL else 'NOT met'}). "
        f"koji-mcp / bare MCPServer: {to_floor:.3f}.",
        f"Upstream (Koji) requests made by {spawns} koji-mcp starts: {len(upstream)} "
        "(no network I/O before the first tool call).",
        "",
        *import_report(koji_runs, floor_runs, ref_runs),
        *profile_lines,
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        with open(ROOT / "bench" / "RESULTS.md", "a") as handle:
            handle.write("\n" + text + "\n")
    return 0 if ratio <= GOAL and not upstream else 1


if __name__ == "__main__":
    raise SystemExit(main())
