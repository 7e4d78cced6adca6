"""A tiny real HTTP server that answers `201` with a large Content-Length, then drips one byte every
few seconds: each read arrives in time for httpx's per-read timeout, but the body never completes."""

from __future__ import annotations

import socket
import threading
import time


class DripServer:
    def __init__(self, interval: float = 2.0, length: int = 100_000, give_up: float = 12.0) -> None:
        # `give_up`: hang up after this long, so a client without a total deadline fails a test
        # slowly instead of hanging it forever
        self.interval, self.length, self.give_up = interval, length, give_up
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> DripServer:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._sock.close()

    def wait_for_requests(self, n: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            assert time.monotonic() < deadline, f"only {len(self.requests)} request(s) arrived"
            time.sleep(0.05)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            self.requests.append(head.split(b"\r\n", 1)[0] + b" " + body)
            try:
                conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n{" % self.length)
                until = time.monotonic() + self.give_up
                while not self._stop.wait(self.interval) and time.monotonic() < until:
                    conn.sendall(b" ")
            except OSError:
                return  # the client gave up
