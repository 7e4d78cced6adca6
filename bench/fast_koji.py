"""A sub-millisecond fake Koji for benchmarks: raw asyncio HTTP/1.1 keep-alive, one route that matters.

Answers `POST /api/v1/interviews/start` with 201 and a valid start body (a fresh interview_id and
session_token per call), so what a benchmark measures is the MCP server in front of it, not the
upstream (the sandbox costs ~1.5 ms a start, which hid koji-mcp's own overhead). Anything else gets
404 with Koji's error body. No framework, no validation, no state beyond a counter.

Run it in its own process so its CPU is not the measured client's:
    python bench/fast_koji.py        # prints its base URL on stdout, serves until stdin closes
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

START = b"/api/v1/interviews/start"
GREETING = "Hi! Thanks for taking the time. What brought you here today?"
_ids = itertools.count(1)


def _response(status: bytes, body: bytes) -> bytes:
    # Koji sends its rate-limit headers on every answer; a limit nobody reaches keeps pacing out of the way.
    reset = str(int(time.time()) + 60).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nx-ratelimit-limit: 1000000000\r\n"
            b"x-ratelimit-remaining: 999999999\r\nx-ratelimit-reset: " + reset + b"\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line, _, headers = head.partition(b"\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            method, path, _ = request_line.split(b" ", 2)
            if method == b"POST" and path == START:
                n = next(_ids)
                body = json.dumps({"interview_id": f"iv_fast{n:08d}", "session_token": f"st_test_fast{n:08d}",
                                   "initial_message": GREETING}).encode()
                writer.write(_response(b"201 Created", body))
            else:
                writer.write(_response(b"404 Not Found", b'{"error":"not_found","message":"fake Koji: no such route"}'))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main() -> None:
    server = await asyncio.start_server(_serve_connection, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True).start()
    async with server:
        await stop.wait()
    os._exit(0)  # skip asyncio's teardown of idle keep-alive connections (it only adds noise)


@contextlib.contextmanager
def url_process(command: list[str], env: dict[str, str], what: str) -> Iterator[str]:
    """A server process that prints its base URL first and stops when its stdin closes; yields the URL."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            cwd=str(Path(__file__).resolve().parents[1]))
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"{what} did not start")
        yield url
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def fast_koji_process() -> Iterator[str]:
    """The fake Koji in its own process; yields its base URL; stops it on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOJI")}
    with url_process([sys.executable, __file__], env, "the fake Koji") as url:
        yield url


if __name__ == "__main__":
    asyncio.run(_main())
