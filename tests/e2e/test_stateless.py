"""`serve --stateless`: several replicas behind a load balancer, any of them answering any request (issue 15).

Two real `koji-mcp serve --stateless` subprocesses share one state dir (the SQLite ledger works across
processes) and the same request-state sealing keys; a round-robin httpx transport sends each HTTP request
to the other replica in turn, so one MCP session's requests (initialize, tools/call, ...) are spread over
both. Also: the refusals (one line, exit 2), the sealed `requestState` of the 2026-07-28 round trips
opening on every replica with the same keys and on none without them, /readyz, and the keys never
appearing in any output.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.server.request_state import RequestStateBoundary

from koji_mcp.config import Settings
from koji_mcp.sandbox import DEMO_KEY, SandboxServer
from koji_mcp.server.app import bind_listener, build_server, request_state_security, run_transport
from koji_mcp.interviews.services import open_services
from tests.conftest import SandboxHandle, koji_mcp_command, make_settings, subprocess_env
from tests.e2e.test_http import free_port, wait_for_port

pytestmark = pytest.mark.anyio

KEY = "sealing-canary-Qw7xZ3vB9nM2kL5pR8tY4uI6oP1aS0dF"  # what both replicas share
OTHER_KEY = "other-sealing-key-Hj4Kd8Lm2Np6Qr0St3Uv7Wx1Yz5Ab9"  # a replica that was given the wrong one
CLIENTS, CALLS = 50, 20


class RoundRobin(httpx2.AsyncBaseTransport):
    """A load balancer without stickiness: each HTTP request goes to the next port in turn."""

    def __init__(self, ports: list[int]) -> None:
        self._next = itertools.cycle(ports)
        self._inner = httpx2.AsyncHTTPTransport()
        self.served: Counter[int] = Counter()
        self.statuses: Counter[int] = Counter()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = next(self._next)
        request.url = request.url.copy_with(port=port)
        self.served[port] += 1
        response = await self._inner.handle_async_request(request)
        self.statuses[response.status_code] += 1
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def start_replica(port: int, state: Path, base_url: str, logs: Path, stateless: bool = True, *,
                  database_url: str | None = None, env: dict[str, str] | None = None,
                  wrapper: Sequence[str] = ()) -> subprocess.Popen:
    """`serve --stateless` at DEBUG; its stdout and stderr go to files (a pipe nobody reads would fill and stall it).

    `database_url`: the ledger on that PostgreSQL database (KOJI_MCP_DATABASE_URL, never a flag: flags show in
    `ps`); `env`: more variables; `wrapper`: a command that execs the server (e.g. `unshare --uts ...`), so
    the process's pid stays the server's."""
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=base_url, KOJI_MCP_STATE_DIR=str(state),
                         KOJI_MCP_REQUEST_STATE_KEYS=KEY, **({"KOJI_MCP_DATABASE_URL": database_url} if database_url
                                                           else {}), **(env or {}))
    with (logs / f"{port}.out").open("w") as out, (logs / f"{port}.err").open("w") as err:
        return subprocess.Popen([*wrapper, *koji_mcp_command(), "serve", "--transport", "streamable-http",
                                 "--port", str(port), *(["--stateless"] if stateless else []), "--log-level", "DEBUG"],
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def replicas(sandbox_server: SandboxServer, tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Two stateless replicas on one state dir and one sandbox; their output is checked when they stop."""
    state, logs = tmp_path_factory.mktemp("shared-state"), tmp_path_factory.mktemp("replica-logs")
    ports = [free_port(), free_port()]
    procs = [start_replica(port, state, sandbox_server.base_url, logs) for port in ports]
    try:
        for port, proc in zip(ports, procs):
            wait_for_port(port, proc)
        yield SimpleNamespace(ports=ports, state=state, logs=logs)
    finally:
        for proc in procs:
            stop(proc)
    for port in ports:  # the sealing key never appears, not even at DEBUG; stdout stays empty
        out, err = (logs / f"{port}.out").read_text(), (logs / f"{port}.err").read_text()
        assert "(stateless) on http://127.0.0.1" in err
        assert out == "" and KEY not in err and KEY[8:24] not in err


def balanced(ports: list[int], mode: str) -> tuple[Client, RoundRobin]:
    transport = RoundRobin(ports)
    http = httpx2.AsyncClient(transport=transport, timeout=60)
    return Client(streamable_http_client(f"http://127.0.0.1:{ports[0]}/mcp", http_client=http), mode=mode), transport


@pytest.mark.parametrize(("mode", "version"), [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_one_client_spread_over_both_replicas(replicas, sandbox, mode, version) -> None:
    """Every request of one client lands on the other replica than the one before, and the flow still works."""
    client, transport = balanced(replicas.ports, mode)
    async with client:
        assert client.protocol_version == version
        started = await client.call_tool("start_interview", {"respondent": {"external_id": f"rr-{mode}"}})
        assert not started.is_error, started.content[0].text
        iid = started.structured_content["interview_id"]
        reply = await client.call_tool("send_interview_message", {"interview_id": iid, "content": "Fine, thanks."})
        assert not reply.is_error, reply.content[0].text
        read = await client.call_tool("get_interview", {"interview_id": iid})
        listed = await client.call_tool("list_interviews", {"external_id": f"rr-{mode}"})
        seen: list[tuple[float, float | None]] = []

        async def on_progress(progress: float, total: float | None, _: str | None) -> None:
            seen.append((progress, total))

        batch = await client.call_tool("start_interviews", {"respondents": [{"external_id": f"rr-{mode}-{i}"}
                                                                             for i in range(3)]},
                                       progress_callback=on_progress)
    # a call's progress rides its own response stream, so it arrives without a session
    assert batch.structured_content["counts"]["started"] == 3 and sorted(seen) == [(1, 3), (2, 3), (3, 3)]
    assert read.structured_content["interview_id"] == iid and read.structured_content["status"] == "active"
    assert [i["interview_id"] for i in listed.structured_content["interviews"]] == [iid]
    assert set(transport.served) == set(replicas.ports) and min(transport.served.values()) >= 2
    started_at_koji = [koji["interview_id"] for koji in sandbox.interviews()]
    assert len(started_at_koji) == 4 and started_at_koji.count(iid) == 1  # each started once, at Koji too
    assert transport.statuses.keys() <= {200, 202, 204, 405}, transport.statuses  # 405: a GET stream is refused


async def test_without_stateless_only_the_2026_protocol_survives_round_robin(sandbox, tmp_path) -> None:
    """What the README says about stickiness: replicas with sessions (no --stateless) serve 2026-07-28 clients
    from any replica (per request), while a 2025-11-25 session minted on one replica is unknown (404) on the other."""
    ports = [free_port(), free_port()]
    procs = [start_replica(port, tmp_path, sandbox.base_url, tmp_path, stateless=False) for port in ports]
    try:
        for port, proc in zip(ports, procs):
            wait_for_port(port, proc)
        client, transport = balanced(ports, "auto")
        async with client:
            started = await client.call_tool("start_interview", {"respondent": {"external_id": "modern"}})
            read = await client.call_tool("get_interview", {"interview_id": started.structured_content["interview_id"]})
        assert not read.is_error and set(transport.served) == set(ports)
        client, transport = balanced(ports, "legacy")
        with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the 404 in an exception group
            async with client:
                await client.call_tool("list_interviews", {})
        assert transport.statuses[404] >= 1  # "unknown or expired session": the session lives on the other replica
    finally:
        for proc in procs:
            stop(proc)


async def test_fifty_clients_twenty_calls_each_no_errors(replicas, sandbox) -> None:
    """50 clients at once (half on each protocol version) x 20 calls through the round robin: 0 errors."""
    await fifty_clients_twenty_calls(replicas.ports, sandbox)


async def fifty_clients_twenty_calls(ports: list[int], sandbox: SandboxHandle, prefix: str = "load-") -> None:
    """CLIENTS clients at once x CALLS calls each (a start, then gets and lists of it) through a round robin
    over `ports`: 0 errors, and each client's interview started exactly once at the sandbox."""
    errors: list[str] = []
    served: Counter[int] = Counter()
    started: dict[str, str] = {}

    async def one(number: int) -> None:
        mode = "legacy" if number % 2 else "auto"
        external_id = f"{prefix}{number}"
        client, transport = balanced(ports, mode)
        try:
            async with client:
                result = await client.call_tool("start_interview", {"respondent": {"external_id": external_id}})
                if result.is_error:
                    errors.append(f"{external_id} start: {result.content[0].text}")
                    return
                iid = started[external_id] = result.structured_content["interview_id"]
                for call in range(1, CALLS):
                    if call % 2:
                        result = await client.call_tool("get_interview", {"interview_id": iid})
                        ok = not result.is_error and result.structured_content["interview_id"] == iid
                    else:
                        result = await client.call_tool("list_interviews", {"external_id": external_id})
                        ok = not result.is_error and [i["interview_id"] for i in
                                                      result.structured_content["interviews"]] == [iid]
                    if not ok:
                        errors.append(f"{external_id} call {call}: {result.content[0].text[:200]}")
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown, unwrapped
            while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
                exc = exc.exceptions[0]
            errors.append(f"{external_id}: {type(exc).__name__}: {exc}"[:300])
        served.update(transport.served)

    began = time.monotonic()
    async with anyio.create_task_group() as tg:
        for number in range(CLIENTS):
            tg.start_soon(one, number)
    elapsed = time.monotonic() - began
    assert errors == [], errors[:5]
    assert len(started) == CLIENTS and len(set(started.values())) == CLIENTS
    koji = [i for i in sandbox.interviews() if (i.get("respondent") or {}).get("external_id", "").startswith(prefix)]
    assert sorted(i["interview_id"] for i in koji) == sorted(started.values())  # each started exactly once
    assert set(served) == set(ports) and abs(served[ports[0]] - served[ports[1]]) <= CLIENTS
    print(f"{CLIENTS} clients x {CALLS} calls over 2 stateless replicas: {elapsed:.1f} s, HTTP requests {dict(served)}")


# -- sealed requestState (2026-07-28): no koji-mcp tool asks the client anything yet, so the state is
# sealed here with the SDK's own boundary and sent with a tools/call; a replica opens it only with the key


async def seal(keys: str, arguments: dict[str, Any], name: str = "list_interviews", state: str = "round-1") -> str:
    """Seal `state` as the SDK's boundary does for an InputRequiredResult of `name` (audience: koji-mcp)."""
    security = request_state_security(Settings.load({"KOJI_MCP_REQUEST_STATE_KEYS": keys}))
    boundary = RequestStateBoundary(security, default_audience="koji-mcp")
    ctx = SimpleNamespace(method="tools/call", params={"name": name, "arguments": arguments})

    async def ask(_: Any) -> dict[str, Any]:
        return {"resultType": "input_required", "inputRequests": {}, "requestState": state}

    return (await boundary(ctx, ask))["requestState"]  # type: ignore[arg-type]


async def test_state_sealed_with_the_shared_key_opens_on_every_replica(replicas) -> None:
    sealed = await seal(KEY, {})
    assert sealed.startswith("v1.") and "round-1" not in sealed
    for port in replicas.ports:
        async with Client(f"http://127.0.0.1:{port}/mcp", mode="auto") as client:
            result = await client.call_tool("list_interviews", {}, request_state=sealed)
            assert not result.is_error and "interviews" in result.structured_content
            # sealed under another key, bound to other arguments, or tampered with: refused, without detail
            for bad in (await seal(OTHER_KEY, {}),
                        await seal(KEY, {"status": "completed"}),
                        sealed[:-2] + ("AA" if not sealed.endswith("AA") else "BB")):
                with pytest.raises(MCPError) as info:
                    await client.call_tool("list_interviews", {}, request_state=bad)
                assert info.value.error.code == -32602
                assert info.value.error.message == "Invalid or expired requestState"
        # the reason goes to the replica's log only (and never the key)
        log = (replicas.logs / f"{port}.err").read_text()
        for reason in ("unknown key", "request binding", "seal"):
            assert f"requestState rejected on tools/call: {reason}\n" in log


async def test_rotation_first_key_seals_every_key_opens(sandbox, tmp_path) -> None:
    """keys=[new, old]: state sealed under the old key still opens; new state is sealed under the new key."""
    rotated = make_settings(sandbox.base_url, state_dir=str(tmp_path / "s"),
                            request_state_keys=(OTHER_KEY, KEY))
    only_new = make_settings(sandbox.base_url, state_dir=str(tmp_path / "s"), request_state_keys=(OTHER_KEY,))
    old_state = await seal(KEY, {})
    new_state = await seal(f"{OTHER_KEY},{KEY}", {})
    async with Client(build_server(rotated), mode="auto") as client:
        assert not (await client.call_tool("list_interviews", {}, request_state=old_state)).is_error
    async with Client(build_server(only_new), mode="auto") as client:
        assert not (await client.call_tool("list_interviews", {}, request_state=new_state)).is_error
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await client.call_tool("list_interviews", {}, request_state=old_state)


async def test_without_keys_each_process_seals_with_its_own(sandbox, tmp_path) -> None:
    """No keys (not --stateless): the SDK's per-process key, which opens nothing sealed elsewhere."""
    settings = make_settings(sandbox.base_url, state_dir=str(tmp_path / "s"))
    assert request_state_security(settings) is None
    async with Client(build_server(settings), mode="auto") as client:
        with pytest.raises(MCPError, match="Invalid or expired requestState"):
            await client.call_tool("list_interviews", {}, request_state=await seal(KEY, {}))


# -- /readyz --------------------------------------------------------------------------------------


def test_readyz_and_healthz_need_no_auth(replicas) -> None:
    for port in replicas.ports:
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}


def test_readyz_without_auth_on_an_authed_server(sandbox, tmp_path) -> None:
    port = free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path),
                         KOJI_MCP_AUTH_TOKEN="alice=alice-token-0123456789abcdef")
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--transport", "streamable-http", "--port", str(port)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)
        assert httpx.post(f"http://127.0.0.1:{port}/mcp", json={}).status_code == 401
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    finally:
        stop(proc)


async def test_readyz_says_not_ready_when_the_ledger_is_gone(sandbox, tmp_path) -> None:
    """A real fault: the ledger's database is closed under a running HTTP server -> 503 with the reason, within
    the 1 s cache; /healthz stays 200 (the process is alive)."""
    settings = make_settings(sandbox.base_url, state_dir=str(tmp_path / "state"))
    port = free_port()
    async with open_services(settings) as services:
        server = build_server(settings, services)
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_transport(server, "streamable-http", port=port,
                                                listener=bind_listener("127.0.0.1", port), stateless=True))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                for _ in range(100):
                    try:
                        ready = await http.get("/readyz")
                        break
                    except httpx.ConnectError:
                        await anyio.sleep(0.05)
                assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
                services.ledger.close()
                cached = await http.get("/readyz")  # checked at most once a second
                assert cached.status_code == 200
                await anyio.sleep(1.1)
                gone = await http.get("/readyz")
                assert gone.status_code == 503
                assert gone.json() == {"status": "not_ready", "reason": "the local ledger could not be read "
                                       "(Cannot operate on a closed database.)"}
                assert (await http.get("/healthz")).status_code == 200
            tg.cancel_scope.cancel()


# -- refusals: one line, exit 2 -------------------------------------------------------------------


@pytest.mark.parametrize(("args", "env", "line"), [
    (["--stateless"], {"KOJI_MCP_REQUEST_STATE_KEYS": KEY},
     "koji-mcp: --stateless (KOJI_MCP_STATELESS) applies to --transport streamable-http only; stdio keeps "
     "per-connection state"),
    (["--transport", "sse"], {"KOJI_MCP_STATELESS": "1", "KOJI_MCP_REQUEST_STATE_KEYS": KEY},
     "koji-mcp: --stateless (KOJI_MCP_STATELESS) applies to --transport streamable-http only; sse keeps "
     "per-connection state"),
    (["--transport", "streamable-http", "--stateless"], {},
     "koji-mcp: --stateless needs KOJI_MCP_REQUEST_STATE_KEYS, the request-state sealing key every replica shares "
     "(the same value everywhere; a key made per process would not open on another replica): generate one with: "
     "python -c 'import secrets;print(secrets.token_urlsafe(32))'"),
    (["--transport", "streamable-http", "--stateless"], {"KOJI_MCP_REQUEST_STATE_KEYS": "too-short-key"},
     "koji-mcp: KOJI_MCP_REQUEST_STATE_KEYS: key 1 of 1 is 13 characters; each key needs 32 to 512; generate one "
     "with: python -c 'import secrets;print(secrets.token_urlsafe(32))'"),
    (["--transport", "streamable-http"], {"KOJI_MCP_REQUEST_STATE_KEYS": f"{KEY},{KEY}"},
     "koji-mcp: KOJI_MCP_REQUEST_STATE_KEYS: key 2 of 2 repeats an earlier key; generate one with: "
     "python -c 'import secrets;print(secrets.token_urlsafe(32))'"),
    (["--transport", "streamable-http"], {"KOJI_MCP_REQUEST_STATE_KEYS": "x" * 40},
     "koji-mcp: KOJI_MCP_REQUEST_STATE_KEYS: key 1 of 1 repeats too few characters (fewer than 10 different ones) "
     "to be random; generate one with: python -c 'import secrets;print(secrets.token_urlsafe(32))'"),
    (["--transport", "streamable-http"], {"KOJI_MCP_STATELESS": "sometimes"},
     "koji-mcp: KOJI_MCP_STATELESS must be true or false (got 'sometimes')"),
])
def test_refusals_are_one_line_and_exit_2(tmp_path, args, env, line) -> None:
    proc = subprocess.run([*koji_mcp_command(), "serve", "--sandbox", "--state-dir", str(tmp_path), *args],
                          env=subprocess_env(**env), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", line + "\n")


def test_keys_are_optional_without_stateless_and_never_shown(sandbox, tmp_path) -> None:
    """Keys without --stateless are used (no refusal); a bad one is refused without echoing any key."""
    bad = "sealing-canary-" + "Qw7 xZ3vB9nM2kL5pR8tY4uI6oP1aS0dF"  # a space inside
    proc = subprocess.run([*koji_mcp_command(), "serve", "--sandbox", "--state-dir", str(tmp_path), "--transport",
                           "streamable-http"], env=subprocess_env(KOJI_MCP_REQUEST_STATE_KEYS=f"{KEY},{bad}"),
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "key 2 of 2 holds a space" in proc.stderr
    assert "canary" not in proc.stderr and "Qw7" not in proc.stderr
    settings = Settings.load({"KOJI_MCP_REQUEST_STATE_KEYS": KEY})
    assert settings.stateless is False and request_state_security(settings) is not None
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump()) and KEY not in json.dumps(
        settings.model_dump(mode="json"))
