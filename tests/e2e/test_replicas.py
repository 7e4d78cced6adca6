"""Two `koji-mcp serve --stateless` replicas on ONE PostgreSQL database (issue 15, "Tests against a real PostgreSQL").

Every replica here has its own state dir (so nothing can be shared through files: the only thing they have in
common is KOJI_MCP_DATABASE_URL, the sealing keys and the sandbox), and its ledger, batch jobs and Koji pacer
live in one throwaway PostgreSQL database. Everything is real: `koji-mcp serve` subprocesses, HTTP, the
sandbox, PostgreSQL (tests/pgcluster.py). Run with `make test-postgres` (KOJI_MCP_TEST_POSTGRES=1).

1. round robin, 50 clients x 20 calls: 0 errors, each interview started once; rows written through one replica
   read through the other;
2. overlapping start_interviews for the same 100 people sent to both replicas at once: each started once;
3. a replica killed with SIGKILL mid-job: the other finishes the job (dead holder found by pid, or, when the
   dead replica ran on "another host", only after its lease expired), 0 duplicates, in-flight starts `unknown`;
4. a sandbox limited to 60/min, 120 starts through two replicas together: 0 x 429, no faster than the window;
5. a replica whose database is unreachable: alive, /readyz 503 (one line, no password), tools refuse to send.
No replica ever prints the database password, the API key or the sealing key.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
from mcp import Client

from koji_mcp.interviews.database import PG_CONNECT_WAIT
from koji_mcp.interviews.jobs import LEASE_SECONDS, SCAN_EVERY
from koji_mcp.sandbox import DEMO_KEY, SandboxConfig, SandboxServer
from tests.conftest import SandboxHandle
from tests.e2e.test_http import free_port, wait_for_port
from tests.e2e.test_stateless import KEY, fifty_clients_twenty_calls, start_replica, stop
from tests.pgcluster import PostgresCluster
from tests.test_batch import START

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

FAR_HOST = "koji-replica-far"  # the hostname a replica "on another machine" sees (its own UTS namespace)


@dataclass
class Replicas:
    """Replicas on one database; each with its own state dir and its stdout/stderr in `logs`."""

    database_url: str
    secrets: list[str]  # what must never appear in their output
    logs: Path
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)
    states: list[Path] = field(default_factory=list)

    def start(self, base_url: str, state: Path, *, database_url: str | None = None, wrapper: list[str] | None = None,
              ready: bool = True) -> int:
        port = free_port()
        state.mkdir(mode=0o700, parents=True, exist_ok=False)
        proc = start_replica(port, state, base_url, self.logs, database_url=database_url or self.database_url,
                             wrapper=wrapper or ())
        self.ports.append(port)
        self.procs.append(proc)
        self.states.append(state)
        wait_for_port(port, proc, timeout=40)
        if ready:
            wait_ready(port)
        return port

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                stop(proc)

    def check_output(self) -> None:
        """stdout empty, stderr free of every secret (at DEBUG), and no ledger file in any state dir."""
        for port in self.ports:
            out, err = (self.logs / f"{port}.out").read_text(), (self.logs / f"{port}.err").read_text()
            assert out == "", f"replica {port} wrote to stdout: {out[:200]!r}"
            assert "(stateless) on http://127.0.0.1" in err
            leaked = [i for i, secret in enumerate(self.secrets) if secret in err]
            assert leaked == [], f"replica {port} printed secret(s) #{leaked}"
        for state in self.states:
            assert not [p.name for p in state.rglob("*.sqlite3*")], f"a ledger file in {state}: the ledger is in PostgreSQL"


def wait_ready(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        if answer.status_code == 200:
            return
        assert time.monotonic() < deadline, f"replica {port} never became ready: {answer.text}"
        time.sleep(0.1)


def secrets_of(cluster: PostgresCluster, database_url: str) -> list[str]:
    return [cluster.password, database_url, KEY, DEMO_KEY]


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def pg_replicas(postgres_cluster: PostgresCluster, sandbox_server: SandboxServer,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Two replicas on one fresh database and the session's sandbox, for the module's read-and-start tests."""
    url = postgres_cluster.new_database()
    root = tmp_path_factory.mktemp("pg-replicas")
    replicas = Replicas(url, secrets_of(postgres_cluster, url), root)
    try:
        replicas.start(sandbox_server.base_url, root / "state-a")
        replicas.start(sandbox_server.base_url, root / "state-b")
        yield replicas
    finally:
        replicas.stop_all()
        postgres_cluster.drop_database(database_name(url))
    replicas.check_output()


def direct(port: int, mode: str = "legacy") -> Client:
    return Client(f"http://127.0.0.1:{port}/mcp", mode=mode)


def starts_per_external_id(sandbox: SandboxHandle, prefix: str) -> Counter[str]:
    """Start requests that reached the sandbox, whatever their answer, per external_id."""
    return Counter(((r["json"] or {}).get("respondent") or {}).get("external_id") for r in sandbox.requests(START)
                   if (((r["json"] or {}).get("respondent") or {}).get("external_id") or "").startswith(prefix))


def interviews_per_external_id(sandbox: SandboxHandle, prefix: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for interview in sandbox.interviews():
        external_id = (interview.get("respondent") or {}).get("external_id") or ""
        if external_id.startswith(prefix):
            found.setdefault(external_id, []).append(interview["interview_id"])
    return found


def statuses(sandbox: SandboxHandle) -> Counter[int]:
    return Counter(r["status"] for r in sandbox.requests())


async def finished_batch(client: Client, batch_id: str, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll get_batch until the job is finished; its last document and every outcome (all pages)."""
    with anyio.fail_after(timeout):
        while True:
            result = await client.call_tool("get_batch", {"batch_id": batch_id})
            assert not result.is_error, result.content[0].text
            if result.structured_content["status"] not in ("running", "interrupted"):
                break
            await anyio.sleep(0.25)
    document = result.structured_content
    outcomes = list(document["outcomes"])
    while document["next_cursor"]:
        page = await client.call_tool("get_batch", {"batch_id": batch_id, "cursor": document["next_cursor"]})
        document = page.structured_content
        outcomes.extend(document["outcomes"])
    return result.structured_content, outcomes


# -- 1. round robin ----------------------------------------------------------------------------------------


async def test_fifty_clients_twenty_calls_round_robin_on_one_database(pg_replicas, sandbox) -> None:
    """test_stateless's load, but the replicas share nothing on disk: only the PostgreSQL database."""
    await fifty_clients_twenty_calls(pg_replicas.ports, sandbox, prefix="pg-load-")


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_start_through_one_replica_is_read_through_the_other(pg_replicas, sandbox, mode) -> None:
    for writer, reader in (pg_replicas.ports, pg_replicas.ports[::-1]):
        external_id = f"cross-{mode}-{writer}"
        async with direct(writer, mode) as one:
            started = await one.call_tool("start_interview", {"respondent": {"external_id": external_id}})
        assert not started.is_error, started.content[0].text
        iid = started.structured_content["interview_id"]
        async with direct(reader, mode) as other:
            read = await other.call_tool("get_interview", {"interview_id": iid})
            listed = await other.call_tool("list_interviews", {"external_id": external_id})
            again = await other.call_tool("start_interviews", {"respondents": [{"external_id": external_id}]})
        assert not read.is_error, read.content[0].text  # the session token was found: the row is shared
        assert (read.structured_content["interview_id"], read.structured_content["status"]) == (iid, "active")
        assert [i["interview_id"] for i in listed.structured_content["interviews"]] == [iid]
        [skip] = again.structured_content["outcomes"]  # the other replica knows this person was invited
        assert (skip["outcome"], skip["interview_id"]) == ("skipped", iid), skip
    koji = interviews_per_external_id(sandbox, f"cross-{mode}-")
    assert koji == {f"cross-{mode}-{port}": [koji[f"cross-{mode}-{port}"][0]] for port in pg_replicas.ports}


# -- 2. overlapping batches for the same people -----------------------------------------------------------------


@pytest.mark.parametrize("background", [False, True], ids=["in-the-call", "as-jobs"])
async def test_overlapping_batches_for_the_same_100_people_start_each_once(pg_replicas, sandbox, background) -> None:
    await overlapping_batches(pg_replicas.ports, sandbox, background, f"overlap-{'job' if background else 'call'}-")


async def test_the_replica_that_lost_the_race_reports_skipped_not_unknown(pg_replicas, sandbox) -> None:
    by_person = await overlapping_batches(pg_replicas.ports, sandbox, True, "race-")
    losers = Counter(pair[1]["outcome"] for pair in by_person.values())
    assert losers == Counter({"skipped": 100}), losers


async def overlapping_batches(ports: list[int], sandbox: SandboxHandle, background: bool,
                              prefix: str) -> dict[str, list[dict[str, Any]]]:
    """The same 100 people sent to both replicas at once (a client each, released together): each started
    exactly once at the sandbox, and per person one replica's outcome is `started`, the other's a refusal
    (`skipped`, or `unknown` while the winner's start was on the wire). Returns both outcomes per person,
    the `started` one first."""
    people = [{"external_id": f"{prefix}{i}", "display_name": f"Person {i}"} for i in range(100)]
    results: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
    go = anyio.Event()

    async def send(port: int) -> None:
        async with direct(port) as client:
            # one start first: this replica learns Koji's limit (6000/min here) and writes it to the shared pacer,
            # so 100 starts fit in the call and both calls run their batches at the same time
            warm = await client.call_tool("start_interview", {"respondent": {"external_id": f"{prefix}warm-{port}"}})
            assert not warm.is_error, warm.content[0].text
            await go.wait()
            result = await client.call_tool("start_interviews", {"respondents": people, "background": background})
            assert not result.is_error, result.content[0].text
            batch_id = result.structured_content.get("batch_id")
            if background:
                assert batch_id is not None
                document, outcomes = await finished_batch(client, batch_id, timeout=60)
                assert document["status"] == "done", document
                results[port] = document, outcomes
            else:
                assert batch_id is None, "the batch became a job: the pacer did not learn the sandbox's limit"
                results[port] = result.structured_content, result.structured_content["outcomes"]

    async with anyio.create_task_group() as tg:
        for port in ports:
            tg.start_soon(send, port)
        await anyio.sleep(0.5)
        go.set()

    # at Koji: each of the 100 started exactly once, and no start request was sent twice
    sent = starts_per_external_id(sandbox, prefix)
    assert sent == Counter({f"{prefix}{i}": 1 for i in range(100)} | {f"{prefix}warm-{p}": 1 for p in ports})
    koji = interviews_per_external_id(sandbox, prefix)
    assert all(len(ids) == 1 for ids in koji.values()) and len(koji) == 102
    assert statuses(sandbox)[429] == 0

    # the two results account for every person: started by one replica, refused as known by the other
    by_person: dict[str, list[dict[str, Any]]] = {}
    for port in ports:
        outcomes = results[port][1]
        assert sorted(o["row"] for o in outcomes) == list(range(1, 101))
        for outcome in outcomes:
            by_person.setdefault(outcome["external_id"], []).append(outcome)
    assert sorted(by_person) == sorted(p["external_id"] for p in people)
    kinds: Counter[str] = Counter()
    for external_id, pair in by_person.items():
        pair.sort(key=lambda o: o["outcome"] != "started")
        started, other = pair
        assert started["outcome"] == "started", pair
        assert started["interview_id"] == koji[external_id][0]
        kinds[other["outcome"]] += 1
        if other["outcome"] == "skipped":  # the ledger row was confirmed: same interview, "already invited"
            assert other["interview_id"] == started["interview_id"], pair
            assert "already invited" in (other.get("message") or other.get("error") or ""), pair
        else:  # the other replica's start was still on the wire: not sent again, said so
            assert other["outcome"] == "unknown", pair
            text = other.get("message") or other.get("error") or ""
            assert "an earlier start is in flight" in text, pair
    counts = [results[port][0]["counts"] for port in ports]
    assert sum(c["started"] for c in counts) == 100
    assert sum(c["skipped"] + c["unknown"] for c in counts) == 100
    assert sum(c["failed"] for c in counts) == 0
    print(f"overlap ({'jobs' if background else 'in the call'}): started per replica "
          f"{[c['started'] for c in counts]}, the other outcome {dict(kinds)}")
    return by_person


# -- 3. SIGKILL mid-job ------------------------------------------------------------------------------------


def lease(database_url: str, batch_id: str) -> tuple[str | None, float | None]:
    with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT lease_holder, lease_until FROM batches WHERE batch_id = %s", (batch_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.mark.parametrize("far", [False, True], ids=["dead-pid-on-this-host", "lease-expiry-other-host"])
async def test_a_replica_killed_mid_job_the_other_finishes_it_without_duplicates(
        postgres_cluster, postgres_url, tmp_path, far) -> None:
    """Replica A runs a background job (paced by a 120/min sandbox, each start held 0.5 s there) and is killed
    with SIGKILL while a start is on the wire. Replica B takes the job over: at once when it can see A's pid is
    gone (same host), or -- when A ran under another hostname, so its pid means nothing here -- only once A's
    lease has expired. Nobody is started twice; starts in flight at the kill end `unknown`, never resent."""
    total, prefix = 40, "kill-"
    if far:  # a UTS namespace needs root (or CAP_SYS_ADMIN): say so rather than skip
        probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            pytest.fail(f"`unshare --uts` cannot run here ({probe.stderr.strip() or probe.returncode}): this variant "
                        "gives the killed replica another hostname; run the PostgreSQL tests as root", pytrace=False)
    people = [{"external_id": f"{prefix}{i}"} for i in range(total)]
    with SandboxServer(SandboxConfig(rate_limit=120, analysis_delay=0.2)) as server:
        sandbox = SandboxHandle(server)
        sandbox.fault(method="POST", path=START, delay=0.5, times=10_000)  # a start stays on the wire 0.5 s
        replicas = Replicas(postgres_url, secrets_of(postgres_cluster, postgres_url), tmp_path)
        wrapper = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', FAR_HOST] if far else None
        try:
            port_a = replicas.start(server.base_url, tmp_path / "state-a", wrapper=wrapper)
            port_b = replicas.start(server.base_url, tmp_path / "state-b")
            victim = replicas.procs[0]
            async with direct(port_a) as client:
                r = await client.call_tool("start_interviews", {"respondents": people, "background": True})
                assert not r.is_error, r.content[0].text
            batch_id = r.structured_content["batch_id"]
            with anyio.fail_after(30):  # some started, and one on the wire (arrived, not yet answered): kill now
                while True:
                    log = sandbox.requests(START)
                    on_wire = [e for e in log if e["status"] is None]
                    if sum(e["status"] == 201 for e in log) >= 8 and on_wire:
                        break
                    await anyio.sleep(0.02)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            killed_at = time.time()
            in_flight = on_wire[-1]["json"]["respondent"]["external_id"]
            holder, lease_until = lease(postgres_url, batch_id)
            host, pid, _ = holder.split(":")
            assert (host.split("/")[0], int(pid)) == (FAR_HOST if far else socket.gethostname(), victim.pid), holder
            assert lease_until - killed_at > 0  # A's lease was still running when it died
            await anyio.sleep(0.3)
            before = len(sandbox.requests(START))
            with anyio.fail_after(LEASE_SECONDS + 2 * SCAN_EVERY + 10):
                while len(sandbox.requests(START)) == before:
                    await anyio.sleep(0.05)
            taken_over_at = time.time()
            async with direct(port_b) as client:
                done, outcomes = await finished_batch(client, batch_id, timeout=90)
        finally:
            replicas.stop_all()
        b_log = (tmp_path / f"{port_b}.err").read_text()
        sent = starts_per_external_id(sandbox, prefix)
        koji = interviews_per_external_id(sandbox, prefix)
        all_statuses = statuses(sandbox)
    replicas.check_output()

    if far:  # B could not tell A was dead: it waited for the lease
        assert taken_over_at >= lease_until, (taken_over_at - killed_at, lease_until - killed_at)
    else:  # B saw A's pid gone, well before the lease would have expired
        assert taken_over_at < lease_until, (taken_over_at - killed_at, lease_until - killed_at)
    assert f"resuming batch {batch_id}" in b_log
    assert (done["status"], done["resumed"]) == ("done", 1), done
    counts = done["counts"]
    assert counts["pending"] == counts["failed"] == counts["cancelled"] == counts["skipped"] == 0, counts
    assert counts["started"] + counts["unknown"] == total and counts["unknown"] >= 1, counts
    assert sorted(o["row"] for o in outcomes) == list(range(1, total + 1))
    # 0 duplicates: no start request was ever sent twice for anyone, and nobody has two interviews
    assert max(sent.values()) == 1 and all(len(ids) == 1 for ids in koji.values()), sent.most_common(3)
    assert all_statuses[429] == 0, all_statuses
    for outcome in outcomes:
        external_id = outcome["external_id"]
        if outcome["outcome"] == "started":
            assert koji[external_id] == [outcome["interview_id"]], outcome
        else:
            assert outcome["outcome"] == "unknown" and "outcome unknown" in outcome["error"], outcome
            assert sent[external_id] <= 1  # reserved before the kill: sent at most by A, never by B
    by_id = {o["external_id"]: o for o in outcomes}
    assert by_id[in_flight]["outcome"] == "unknown" and sent[in_flight] == 1, by_id[in_flight]
    assert lease(postgres_url, batch_id) == (None, None)  # finished: no lease left
    print(f"{'other host' if far else 'same host'}: taken over {taken_over_at - killed_at:.1f} s after the kill "
          f"(lease had {lease_until - killed_at:.1f} s left); {counts}")


# -- 4. one Koji rate limit across replicas ----------------------------------------------------------------


async def test_two_replicas_keep_together_within_60_starts_a_minute(postgres_cluster, postgres_url, tmp_path) -> None:
    """A sandbox with Koji's documented limit (60 requests/min per key, sliding window, not shortened); two
    replicas each get a job of 60 starts at once. Together: 0 x 429, all 120 started once, and the 61st start
    no sooner than a minute after the first (so the whole run takes at least the window)."""
    per_replica = 60
    with SandboxServer(SandboxConfig(rate_limit=60, window_seconds=60.0, analysis_delay=0.2)) as server:
        sandbox = SandboxHandle(server)
        replicas = Replicas(postgres_url, secrets_of(postgres_cluster, postgres_url), tmp_path)
        documents: dict[int, dict[str, Any]] = {}
        try:
            ports = [replicas.start(server.base_url, tmp_path / f"state-{n}") for n in "ab"]
            go = anyio.Event()

            async def run(port: int, letter: str) -> None:
                async with direct(port) as client:
                    await go.wait()
                    people = [{"external_id": f"rate-{letter}{i}"} for i in range(per_replica)]
                    r = await client.call_tool("start_interviews", {"respondents": people, "background": True})
                    assert not r.is_error, r.content[0].text
                    documents[port], _ = await finished_batch(client, r.structured_content["batch_id"], timeout=180)

            async with anyio.create_task_group() as tg:
                for port, letter in zip(ports, "ab"):
                    tg.start_soon(run, port, letter)
                await anyio.sleep(0.5)
                began = time.monotonic()
                go.set()
            elapsed = time.monotonic() - began
        finally:
            replicas.stop_all()
        all_statuses = statuses(sandbox)
        sent = starts_per_external_id(sandbox, "rate-")
        koji = interviews_per_external_id(sandbox, "rate-")
        created = sorted(datetime.fromisoformat(i["created_at"].replace("Z", "+00:00")).timestamp()
                         for i in sandbox.interviews())
    replicas.check_output()

    assert all_statuses == Counter({201: 2 * per_replica}), (all_statuses, documents)  # every request a start
    assert sent == Counter({f"rate-{letter}{i}": 1 for letter in "ab" for i in range(per_replica)})
    assert all(len(ids) == 1 for ids in koji.values()) and len(koji) == 2 * per_replica
    for port in ports:
        assert documents[port]["status"] == "done" and documents[port]["counts"]["started"] == per_replica
        err = (tmp_path / f"{port}.err").read_text()
        assert "rate_limited" not in err and " 429" not in err
    # the sandbox's own clock: the 61st start at least a window after the first (ms timestamps, truncated)
    assert created[60] - created[0] >= 60.0 - 0.002, created[60] - created[0]
    assert elapsed >= 60.0, elapsed
    # and no slower than one server alone: the pacer spreads a known limit at 1 s a start after a short burst,
    # so 120 starts take about two minutes whether one replica sends them or two share the schedule
    assert elapsed <= 2 * per_replica + 30, elapsed
    print(f"120 starts through 2 replicas against 60/min: {elapsed:.1f} s, first-to-61st start "
          f"{created[60] - created[0]:.2f} s, statuses {dict(all_statuses)}")


# -- 5. the database unreachable ---------------------------------------------------------------------------


async def test_a_replica_without_its_database_is_alive_not_ready_and_sends_nothing(sandbox, tmp_path) -> None:
    password = secrets.token_urlsafe(18)
    port_db = free_port()  # nothing listens there
    url = f"postgresql://koji:{password}@127.0.0.1:{port_db}/koji"
    replicas = Replicas(url, [password, url, KEY, DEMO_KEY], tmp_path)
    try:
        began = time.monotonic()
        port = replicas.start(sandbox.base_url, tmp_path / "state", ready=False)
        proc = replicas.procs[0]
        # the listener is bound at once; the server answers once it has tried the database for PG_CONNECT_WAIT
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=PG_CONNECT_WAIT + 15)
        print(f"first /healthz answer {time.monotonic() - began:.1f} s after the start")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 503, ready.text
        body = ready.json()
        assert body["status"] == "not_ready" and set(body) == {"status", "reason"}
        reason = body["reason"]
        assert "\n" not in reason and 0 < len(reason) <= 300, reason
        assert password not in reason and password not in ready.text
        assert f"@127.0.0.1:{port_db}/koji is not ready" in reason, reason  # where, without the password
        async with direct(port) as client:
            started = await client.call_tool("start_interview", {"respondent": {"external_id": "no-db"}})
            batch = await client.call_tool("start_interviews", {"respondents": [{"external_id": "no-db-2"}]})
        print(f"start_interview: {started.content[0].text!r}\nstart_interviews: {batch.content[0].text!r}")
        assert started.is_error and "Nothing was sent to Koji." in started.content[0].text, started.content[0].text
        for text in (started.content[0].text, batch.content[0].text):  # the advice fits a ledger on PostgreSQL
            assert "Check the ledger database (KOJI_MCP_DATABASE_URL" in text and "KOJI_MCP_STATE_DIR" not in text
        assert password not in started.content[0].text
        assert batch.is_error or batch.structured_content["counts"]["started"] == 0
        assert "nothing was sent" in batch.content[0].text.lower(), batch.content[0].text
        assert sandbox.requests() == []  # nothing reached Koji
        assert proc.poll() is None  # still running
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 503
    finally:
        replicas.stop_all()
    replicas.check_output()
    err = (tmp_path / f"{port}.err").read_text()  # the log names the database (its password never: check_output)
    assert f"@127.0.0.1:{port_db}/koji is not ready" in err
    assert "Traceback" not in err  # an unreachable database is a state /readyz reports, not a crash to log
