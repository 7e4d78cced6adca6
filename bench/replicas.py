"""The ledger on PostgreSQL: per-call overhead beside SQLite, and one Koji rate limit across replicas
(run: `make bench-replicas`).

Part 1, per-call overhead. Two `koji-mcp serve` processes over stdio (ClientSession, as in
bench/calls.py), both against the same fast fake Koji (bench/fast_koji.py, its own process, well
under a millisecond a start, so a slow upstream cannot hide the server's cost):
  SQLite      the ledger in a state dir (WAL, synchronous=NORMAL), as users run it on one machine;
  PostgreSQL  KOJI_MCP_DATABASE_URL on a fresh database of a throwaway local cluster (the ledger and,
              on PostgreSQL, the Koji pacer's schedule: one shared row per key).
Two calls: start_interview (a write: reserve + confirm in the ledger, a pacer update on PostgreSQL,
one POST upstream) and list_interviews (limit 10: a read, ledger only, no upstream). The four
(backend, call) blocks run interleaved, the order rotating each round, after a warm-up. Reported: the
medians, the PostgreSQL − SQLite difference (median of per-round differences) and the ratio; then what
PostgreSQL executes per call (log_statement=all, switched on by a reload for a separate run of calls),
and, in this process without MCP, where the difference goes: the ledger's writes per start on each
backend, a bare round trip, and one reservation of the shared pacer at several Koji limits.

Part 2, batch throughput with 1 vs 2 replicas. A fresh `koji-mcp sandbox --rate-limit LIMIT` process
and a fresh database per run; replicas are `koji-mcp serve --transport streamable-http --stateless`,
same KOJI_MCP_DATABASE_URL, same KOJI_MCP_REQUEST_STATE_KEYS, a state dir each, started and ready
(/readyz 200) before the clock starts. 1 replica: one start_interviews call for N respondents. 2
replicas: N/2 different respondents to each, sent at the same moment. Both with background=true (a job,
as any long batch becomes), then get_batch is polled every 0.1 s on each replica until its job is no
longer running. Koji's limit is the ceiling, so the goal is equal wall time (ratio 2 replicas / 1 ≈ 1:
faster would mean the replicas did not share one schedule), 0 × 429 at the sandbox, 0 duplicates.
Two floors are printed: N at the limit (N / LIMIT minutes), and the pacer's own schedule, which lets
a tenth of the limit go at once and spaces the rest so that no window exceeds the limit.

The PostgreSQL cluster is tests/pgcluster.py, imported (tests.pgcluster), not copied. Benchmarks keep
away from tests/ because test code leans on pytest and its fixtures; that module does not (stdlib and
psycopg only, no pytest, no conftest), and it is the one place that knows how to run initdb/pg_ctl as
root (runuser postgres), on a free port, in /dev/shm. A copy in bench/ would drift from the harness
`make test-postgres` keeps working (bench/conformance_auth.py imports test helpers the same way).
Its settings are fsync=off and synchronous_commit=off in RAM: the figures are PostgreSQL's round trips
and CPU, not a durable commit (a production server adds one WAL flush per committed write transaction).

Prints Markdown tables; --write appends them to bench/RESULTS.md. Exit 1 if part 2 misses a goal
(429s, duplicates, missing starts, or a wall-time ratio outside 0.9-1.1); part 1 has no gate.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from calls import BODY, append_results, child_env, heading, koji_command, p90, stdio_session  # noqa: E402
from fast_koji import fast_koji_process  # noqa: E402
from load import Session, free_port, server_process  # noqa: E402
from koji_mcp.sandbox import DEMO_KEY  # noqa: E402
from tests.pgcluster import PostgresCluster  # noqa: E402  (standalone module: see the docstring)

PYTHON = sys.executable
START = "/api/v1/interviews/start"
BACKENDS = ("SQLite", "PostgreSQL")
CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "start_interview": ("start_interview", BODY),
    "list_interviews": ("list_interviews", {"limit": 10}),
}
VARIANTS = [(backend, call) for call in CALLS for backend in BACKENDS]
RATIO_BAND = (0.9, 1.1)
MACHINE = ("2 cores shared with other engineers' test runs: read the differences and ratios, not the "
           "absolute times")


# -- part 1: per-call overhead, PostgreSQL vs SQLite ----------------------------------------------


def caller(session: Any, tool: str, args: dict[str, Any]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        result = await session.call_tool(tool, args)
        if result.is_error:
            raise RuntimeError(f"{tool} failed: {result.content[0].text}")  # type: ignore[union-attr]
    return call


STATEMENT = "|LOG:  statement: "
EXECUTE = "|LOG:  execute "


def statement_kind(sql: str) -> str:
    """A statement as a short label: its verb and table (`INSERT interviews`, `SELECT pg_advisory_xact_lock`)."""
    words = sql.replace("(", " ").split()
    if not words:
        return "?"
    verb = words[0].upper()
    if verb in ("BEGIN", "COMMIT", "ROLLBACK"):
        return verb
    for marker in ("INTO", "FROM", "UPDATE"):
        upper = [w.upper() for w in words]
        if marker in upper[:-1] and (marker != "UPDATE" or verb == "UPDATE"):
            return f"{verb} {words[upper.index(marker) + 1]}"
    return f"{verb} {words[1]}" if len(words) > 1 else verb


def logged_statements(log: Path, offset: int, dbname: str) -> Counter[str]:
    """The statements PostgreSQL logged for `dbname` after `offset` (log_line_prefix '%d|'), by kind."""
    kinds: Counter[str] = Counter()
    with open(log, "rb") as handle:
        handle.seek(offset)
        for raw in handle.read().decode("utf-8", "replace").splitlines():
            if not raw.startswith(dbname + "|"):
                continue
            if STATEMENT in raw:
                kinds[statement_kind(raw.split(STATEMENT, 1)[1])] += 1
            elif EXECUTE in raw:  # `execute <unnamed>: SQL` or `execute _pg3_0: SQL` (prepared)
                kinds[statement_kind(raw.split(EXECUTE, 1)[1].split(": ", 1)[1])] += 1
    return kinds


async def count_statements(pg: PostgresCluster, admin: Any, dbname: str, call: Callable[[], Awaitable[None]],
                           calls: int) -> Counter[str]:
    """Round trips per call: log_statement=all for a moment (reloaded, no restart), `calls` calls, read the log."""
    assert pg.base_dir is not None
    log = pg.base_dir / "server.log"
    admin.execute("ALTER SYSTEM SET log_statement = 'all'")
    admin.execute("ALTER SYSTEM SET log_line_prefix = '%d|'")
    admin.execute("SELECT pg_reload_conf()")
    try:
        await anyio.sleep(0.5)  # every backend rereads the configuration before its next statement
        offset = log.stat().st_size
        for _ in range(calls):
            await call()
        await anyio.sleep(0.3)
        return logged_statements(log, offset, dbname)
    finally:
        admin.execute("ALTER SYSTEM RESET log_statement")
        admin.execute("ALTER SYSTEM RESET log_line_prefix")
        admin.execute("SELECT pg_reload_conf()")


async def overhead(base_url: str, pg: PostgresCluster, dbname: str, admin: Any, logdir: Path, rounds: int,
                   block: int, warmup: int, count_calls: int
                   ) -> tuple[dict[tuple[str, str], list[list[float]]], dict[str, Counter[str]], int]:
    """Per-call latencies (ms) per (backend, call), one list per round; PostgreSQL statements per call kind
    (over `count_calls` calls, after the timing); the pacer row's size in bytes at the end of the timing."""
    times: dict[tuple[str, str], list[list[float]]] = {v: [] for v in VARIANTS}
    statements: dict[str, Counter[str]] = {}
    async with contextlib.AsyncExitStack() as stack:
        sessions = {}
        for backend in BACKENDS:
            command, env = koji_command(str(logdir / f"state-{backend}"), base_url)
            if backend == "PostgreSQL":
                env["KOJI_MCP_DATABASE_URL"] = pg.url_for(dbname)
            errlog = stack.enter_context(open(logdir / f"serve-{backend}.log", "a"))
            sessions[backend], _ = await stack.enter_async_context(stdio_session(command, env, errlog))
        callers = {(b, c): caller(sessions[b], *CALLS[c]) for b, c in VARIANTS}
        for variant in VARIANTS:
            for _ in range(warmup):
                await callers[variant]()
        for round_no in range(rounds):
            shift = round_no % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                laps = []
                call = callers[variant]
                for _ in range(block):
                    began = time.perf_counter_ns()
                    await call()
                    laps.append((time.perf_counter_ns() - began) / 1e6)
                times[variant].append(laps)
        import psycopg

        with psycopg.connect(pg.url_for(dbname), autocommit=True) as conn:
            row = conn.execute("SELECT coalesce(max(octet_length(state)), 0) FROM pacer").fetchone()
            pacer_bytes = int(row[0])
        if count_calls:
            for name in CALLS:
                statements[name] = await count_statements(pg, admin, dbname, callers[("PostgreSQL", name)],
                                                          count_calls)
    return times, statements, pacer_bytes


def in_process(pg_url: str, state_dir: str, n: int, rounds: int = 10) -> dict[str, float]:
    """Median µs, in this process (no MCP, no upstream), interleaved in `rounds` rounds: one start's ledger
    writes (reserve + confirm) on each backend, a bare PostgreSQL round trip, and one pacer reservation in the
    shared (PostgreSQL) store at several limits (its send log holds `limit` entries) and in memory."""
    from koji_mcp.interviews.ledger import Ledger
    from koji_mcp.interviews.shared_pacing import DatabasePaceStore
    from koji_mcp.koji.ratelimit import Pacer, RateLimitTracker

    ledgers = {"SQLite": Ledger.open(state_dir, "http://bench"),
               "PostgreSQL": Ledger.open(state_dir, "http://bench", database_url=pg_url)}
    try:
        ids = itertools.count()
        run = secrets.token_hex(4)  # ids unique even in a ledger kept from an earlier run
        actions: dict[str, Callable[[], object]] = {}
        for label, ledger in ledgers.items():
            def start(ledger: Any = ledger) -> None:
                seq = ledger.reserve(display_name="Bench Person", mode="text", locale="en")
                ledger.confirm(seq, interview_id=f"iv_micro{run}_{next(ids)}", session_token="st_x", initial_message="Hi!")
            actions[f"ledger {label}"] = start
        db = ledgers["PostgreSQL"].db

        def select_1() -> None:
            with db.read() as conn:
                conn.execute("SELECT 1").fetchone()
        actions["round trip"] = select_1
        pacers = {f"pacer {limit}": Pacer(RateLimitTracker(), store=DatabasePaceStore(db, f"bench-{limit}"))  # type: ignore[arg-type]
                  for limit in (60, 600, 1000)}
        pacers["pacer memory"] = Pacer(RateLimitTracker())
        for name, pacer in pacers.items():
            limit = 1000 if name == "pacer memory" else int(name.split()[1])
            pacer.store.update(lambda state, _now, limit=limit: setattr(state, "limit", limit))
            for _ in range(limit):  # fill its send log: `limit` entries from here on
                pacer.reserve(10**9)
            actions[name] = lambda pacer=pacer: pacer.reserve(10**9)
        for action in actions.values():  # warm-up
            for _ in range(20):
                action()
        laps: dict[str, list[float]] = {name: [] for name in actions}
        names = list(actions)
        for round_no in range(rounds):
            shift = round_no % len(names)
            for name in names[shift:] + names[:shift]:
                action = actions[name]
                for _ in range(max(1, n // rounds)):
                    began = time.perf_counter_ns()
                    action()
                    laps[name].append((time.perf_counter_ns() - began) / 1e3)
    finally:
        for ledger in ledgers.values():
            ledger.close()
    return {name: statistics.median(values) for name, values in laps.items()}


def overhead_report(times: dict[tuple[str, str], list[list[float]]], statements: dict[str, Counter[str]],
                    pacer_bytes: int, micro: dict[str, float], rounds: int, block: int, count_calls: int,
                    pg_version: str) -> str:
    lines = [
        heading("Ledger on PostgreSQL vs SQLite: per-call overhead (stdio, fast upstream)"),
        f"{rounds} interleaved rounds × {block} sequential calls per (backend, call) ({rounds * block} each), one "
        "`koji-mcp serve` over stdio per backend (ClientSession), both in front of the fast fake Koji "
        "(bench/fast_koji.py). SQLite: the ledger in a state dir (WAL, synchronous=NORMAL). PostgreSQL "
        f"{pg_version}: KOJI_MCP_DATABASE_URL on a fresh database of a throwaway local cluster (tests/pgcluster.py: "
        "/dev/shm, fsync=off, synchronous_commit=off, TCP on 127.0.0.1, so no disk flush is priced). "
        f"Δ = median of per-round differences. {MACHINE}.",
        "",
        "| call | SQLite median (ms) | SQLite p90 | PostgreSQL median (ms) | PostgreSQL p90 | Δ PG − SQLite (ms) "
        "| ratio PG / SQLite | PG round trips per call | PG write transactions per call |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for call in CALLS:
        flat = {b: [t for lap in times[(b, call)] for t in lap] for b in BACKENDS}
        med = {b: statistics.median(v) for b, v in flat.items()}
        rounds_med = {b: [statistics.median(lap) for lap in times[(b, call)]] for b in BACKENDS}
        delta = statistics.median(p - s for p, s in zip(rounds_med["PostgreSQL"], rounds_med["SQLite"], strict=True))
        kinds = statements.get(call)
        trips = f"{sum(kinds.values()) / count_calls:.1f}" if kinds else "—"
        commits = f"{kinds['COMMIT'] / count_calls:.1f}" if kinds else "—"
        lines.append(f"| {call} | {med['SQLite']:.2f} | {p90(flat['SQLite']):.2f} | {med['PostgreSQL']:.2f} | "
                     f"{p90(flat['PostgreSQL']):.2f} | {delta:+.2f} | {med['PostgreSQL'] / med['SQLite']:.2f} | "
                     f"{trips} | {commits} |")
    if statements:
        lines += ["", f"What PostgreSQL executes per call (log_statement=all over {count_calls} further calls of "
                  "each kind, after the timing):"]
        for call, kinds in statements.items():
            detail = ", ".join(f"{kind} ×{n / count_calls:.3g}" for kind, n in kinds.most_common())
            lines.append(f"- {call}: {detail}")
    lines += ["", "A start's ledger writes (reserve, confirm) and its pacer claim run in a worker thread on PostgreSQL, "
              "so the event loop serves other calls meanwhile; reads (list, get) run inline, one or two round trips. "
              f"The pacer row (PaceState JSON) was {pacer_bytes} bytes at the end of the timing: sends are logged "
              "only up to 120 per window (Koji's 60/min keeps at most 60); beyond, the spacing alone "
              "(window / (limit − burst)) keeps every window within the limit, so the row stays small."]
    if micro:
        lines += ["", "Where the difference goes, measured in this process (no MCP, no upstream; medians of interleaved blocks): one start's "
                  f"ledger writes (reserve + confirm) {micro['ledger SQLite']:.0f} µs on SQLite, "
                  f"{micro['ledger PostgreSQL']:.0f} µs on PostgreSQL; a bare PostgreSQL round trip (`SELECT 1` from "
                  f"the pool) {micro['round trip']:.0f} µs; one pacer reservation in the shared PostgreSQL row "
                  f"{micro['pacer 60']:.0f} µs at Koji's 60/min (60 sends in its log), {micro['pacer 600']:.0f} µs at "
                  f"600/min, {micro['pacer 1000']:.0f} µs at 1000/min (no log past 120/window), against "
                  f"{micro['pacer memory']:.0f} µs in memory (SQLite deployments, one process)."]
    return "\n".join(lines)


# -- part 2: batch throughput, 1 vs 2 replicas on one database ------------------------------------


def sandbox_command(port: int, limit: int) -> tuple[list[str], dict[str, str]]:
    return ([PYTHON, "-m", "koji_mcp", "sandbox", "--port", str(port), "--rate-limit", str(limit)], child_env())


def replica_command(port: int, base_url: str, state: str, db_url: str, keys: str) -> tuple[list[str], dict[str, str]]:
    env = child_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=base_url, KOJI_MCP_STATE_DIR=state,
                    KOJI_MCP_DATABASE_URL=db_url, KOJI_MCP_REQUEST_STATE_KEYS=keys)
    return [PYTHON, "-m", "koji_mcp", "serve", "--transport", "streamable-http", "--stateless",
            "--port", str(port)], env


def wait_ready(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text[:200]
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise RuntimeError(f"the replica on port {port} is not ready after {timeout:.0f} s: {last}")


async def tool(session: Session, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    session.next_id += 1
    answer = await session.post({"jsonrpc": "2.0", "id": session.next_id, "method": "tools/call",
                                 "params": {"name": name, "arguments": arguments}})
    if not answer or "result" not in answer or answer["result"].get("isError"):
        raise RuntimeError(f"{name} failed: {json.dumps(answer)[:300]}")
    return answer["result"].get("structuredContent") or {}


async def batch_run(ports: list[int], n: int) -> tuple[float, list[float], list[dict[str, Any]]]:
    """N respondents split over the replicas, sent at once; (wall s, per-replica s, final get_batch documents)."""
    sessions = [Session(f"http://127.0.0.1:{port}/mcp", None) for port in ports]
    share = n // len(ports)
    ends: list[float] = [0.0] * len(ports)
    finals: list[dict[str, Any]] = [{} for _ in ports]
    try:
        for session in sessions:
            await session.open()
        began = time.perf_counter()

        async def one(i: int) -> None:
            people = [{"external_id": f"p{k}", "display_name": f"Person {k}"} for k in range(i * share, (i + 1) * share)]
            started = await tool(sessions[i], "start_interviews", {"respondents": people, "background": True})
            batch_id = started["batch_id"]
            while True:
                state = await tool(sessions[i], "get_batch", {"batch_id": batch_id})
                if state["status"] != "running":
                    break
                await anyio.sleep(0.1)
            ends[i] = time.perf_counter() - began
            finals[i] = state

        async with anyio.create_task_group() as group:
            for i in range(len(ports)):
                group.start_soon(one, i)
        wall = time.perf_counter() - began
    finally:
        for session in sessions:
            await session.close()
    return wall, ends, finals


def sandbox_counts(base_url: str) -> dict[str, int]:
    entries = [e for e in httpx.get(f"{base_url}/_sandbox/requests", timeout=30).json()["requests"]
               if e["path"] == START]
    ok = Counter(e["json"]["respondent"]["external_id"] for e in entries if e["status"] == 201)
    return {"requests": len(entries), "started": sum(ok.values()), "people": len(ok),
            "duplicates": sum(k - 1 for k in ok.values() if k > 1),
            "429s": sum(1 for e in entries if e["status"] == 429),
            "failures": sum(1 for e in entries if e["status"] not in (201, 429))}


def ledger_duplicates(db_url: str) -> tuple[int, int]:
    """(active rows, external_ids with more than one row) in the shared ledger."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        active = conn.execute("SELECT count(*) FROM interviews WHERE status = 'active'").fetchone()[0]
        dup = conn.execute("SELECT count(*) FROM (SELECT external_id FROM interviews GROUP BY external_id "
                           "HAVING count(*) > 1) d").fetchone()[0]
    return int(active), int(dup)


def replicas_run(pg: PostgresCluster, replicas: int, n: int, limit: int, logdir: Path) -> dict[str, Any]:
    keys = secrets.token_urlsafe(32)
    db_url = pg.new_database()
    sandbox_port = free_port()
    ports = [free_port() for _ in range(replicas)]
    with contextlib.ExitStack() as stack:
        stack.enter_context(server_process(*sandbox_command(sandbox_port, limit), sandbox_port,
                                           logdir / f"sandbox-{replicas}.log"))
        base_url = f"http://127.0.0.1:{sandbox_port}"
        for i, port in enumerate(ports):
            stack.enter_context(server_process(
                *replica_command(port, base_url, str(logdir / f"state-r{replicas}-{i}"), db_url, keys), port,
                logdir / f"replica-{replicas}-{i}.log"))
        for port in ports:
            wait_ready(port)
        wall, ends, finals = anyio.run(batch_run, ports, n)
        counts = sandbox_counts(base_url)
    active, ledger_dup = ledger_duplicates(db_url)
    return {"replicas": replicas, "wall": wall, "ends": ends, "finals": finals, **counts,
            "ledger_active": active, "ledger_duplicates": ledger_dup}


def replicas_report(runs: list[dict[str, Any]], n: int, limit: int) -> tuple[str, bool]:
    floor = n / limit * 60
    burst = limit // 10
    schedule = max(0, n - burst) * (60 / limit if limit <= 120 else 60 / (limit - burst))  # ratelimit._spacing
    one = [r for r in runs if r["replicas"] == 1]
    two = [r for r in runs if r["replicas"] == 2]
    ratios = [b["wall"] / a["wall"] for a, b in zip(one, two, strict=True)]
    ratio = statistics.median(ratios)
    lines = [
        heading("Batch throughput on one PostgreSQL ledger: 1 vs 2 replicas"),
        f"`koji-mcp sandbox --rate-limit {limit}` (its own process, sliding 60 s window per key) and a fresh database "
        f"per run; replicas: `koji-mcp serve --transport streamable-http --stateless`, same KOJI_MCP_DATABASE_URL and "
        f"sealing keys, a state dir each. {n} respondents through start_interviews (background=true): all to 1 replica, "
        f"or {n // 2} different ones to each of 2 replicas at the same moment; wall = first call sent until every "
        f"job's get_batch (polled every 0.1 s) says it finished. Floor at the limit: {n} / {limit} per min = "
        f"{floor:.0f} s; the pacer's schedule (a tenth of the limit at once, the rest spaced so no window exceeds the limit): "
        f"{schedule:.0f} s. {MACHINE}.",
        "",
        "| replicas | wall (s) | per replica (s) | ratio to floor | ratio to schedule | started | duplicates (Koji / ledger) "
        "| 429s | failures |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ok = True
    for r in runs:
        per = " / ".join(f"{e:.1f}" for e in r["ends"])
        lines.append(f"| {r['replicas']} | {r['wall']:.1f} | {per} | {r['wall'] / floor:.2f} | "
                     f"{r['wall'] / schedule if schedule else float('nan'):.2f} | {r['started']} | {r['duplicates']} / {r['ledger_duplicates']} | "
                     f"{r['429s']} | {r['failures']} |")
        ok &= (r["duplicates"] == 0 and r["ledger_duplicates"] == 0 and r["429s"] == 0 and r["failures"] == 0
               and r["people"] == n and r["ledger_active"] == n)
    in_band = RATIO_BAND[0] <= ratio <= RATIO_BAND[1]
    clean = ok
    ok &= in_band
    lines += ["", f"Wall time 2 replicas / 1 replica: **{ratio:.2f}** (goal ≈ 1, {RATIO_BAND[0]}–{RATIO_BAND[1]}: "
              f"{'met' if in_band else 'NOT met'}; well below it, the replicas would be pacing apart and together "
              f"exceeding Koji's limit). 429s, duplicates, failures, everyone started once: "
              f"{'goal met' if clean else 'goal NOT met'}."]
    if n <= limit:
        lines.append(f"With {n} ≤ {limit} starts Koji's 60 s window cannot be exceeded whatever the pacing, so 0 × 429 "
                     "here is necessary, not sufficient: the wall-time ratio is what shows one shared schedule (two "
                     f"replicas pacing apart would each burst {limit // 10} and finish in well under half the time). "
                     "`python bench/replicas.py --part replicas --limit 120 -n 200` (~95 s a run) takes the batch "
                     "past Koji's window.")
    for r in runs:
        counts = [f.get("counts") for f in r["finals"]]
        lines.append(f"{r['replicas']} replica(s): final get_batch counts {counts}.")
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=25, help="part 1: interleaved rounds (default 25)")
    parser.add_argument("--block", type=int, default=10, help="part 1: calls per variant per round (default 10)")
    parser.add_argument("--warmup", type=int, default=20, help="part 1: warm-up calls per variant (default 20)")
    parser.add_argument("--count-calls", type=int, default=50,
                        help="part 1: calls per kind over which PostgreSQL's statements are counted (0: skip)")
    parser.add_argument("-n", type=int, default=200, help="part 2: respondents per run (default 200, even)")
    parser.add_argument("--limit", type=int, default=600, help="part 2: the sandbox's rate limit per minute (default 600)")
    parser.add_argument("--part", choices=("both", "overhead", "replicas"), default="both")
    parser.add_argument("--write", action="store_true", help="append the tables to bench/RESULTS.md")
    args = parser.parse_args()
    if args.n % 2:
        parser.error("-n must be even (split over 2 replicas)")
    texts: list[str] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="koji-bench-pg-", dir=os.environ.get("KOJI_BENCH_TMP")) as tmp, \
            PostgresCluster() as pg:
        logdir = Path(tmp)
        print(f"PostgreSQL {pg.version} cluster up in {pg.start_seconds:.1f} s", file=sys.stderr, flush=True)
        if args.part in ("both", "overhead"):
            import psycopg

            pg.new_database("overhead")
            with fast_koji_process() as fast_url, psycopg.connect(pg.url, autocommit=True) as admin:
                times, statements, pacer_bytes = anyio.run(overhead, fast_url, pg, "overhead", admin, logdir,
                                                           args.rounds, args.block, args.warmup, args.count_calls)
            micro = in_process(pg.new_database("micro"), str(logdir / "state-micro"), 300) if args.count_calls else {}
            text = overhead_report(times, statements, pacer_bytes, micro, args.rounds, args.block, args.count_calls,
                                   pg.version)
            print(text, flush=True)
            texts.append(text)
        if args.part in ("both", "replicas"):
            runs = [replicas_run(pg, replicas, args.n, args.limit, logdir) for replicas in (1, 2)]
            text, ok = replicas_report(runs, args.n, args.limit)
            print(text, flush=True)
            texts.append(text)
    if args.write:
        append_results("\n\n".join(texts))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
