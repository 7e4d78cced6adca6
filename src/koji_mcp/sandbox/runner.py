"""Running the sandbox with uvicorn: in a background thread, or in the foreground.

:class:`SandboxServer` is for tests and ``serve --sandbox``: it binds a real socket
itself (port 0 → a free port, known before uvicorn starts), runs uvicorn in a daemon
thread with its own event loop – so it works from sync and async callers alike – and
never writes to stdout, which may be an MCP stdio channel.

:func:`run_sandbox` is the ``koji-mcp sandbox`` command: banner on stdout, access log,
Ctrl-C exits quietly.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from types import TracebackType

import uvicorn

from .app import create_app
from .config import ALL_PERMISSIONS, DEMO_KEY, SandboxConfig
from .state import SandboxState

__all__ = ["SandboxServer", "banner", "bind_socket", "run_sandbox"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; raises ``OSError`` (e.g. port in use) before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP; without it every response stalls ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if sys.platform != "win32":  # on Windows it would allow stealing a busy port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class SandboxServer:
    """A sandbox on a real socket in a background thread; use as a context manager."""

    def __init__(self, config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SandboxConfig()
        self.app = create_app(self.config)
        self.state: SandboxState = self.app.state.sandbox
        self.host = host
        self._requested_port = port
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._sock is None:
            raise RuntimeError("SandboxServer is not running")
        return int(self._sock.getsockname()[1])

    @property
    def base_url(self) -> str:
        return _url(self.host, self.port)

    def start(self, timeout: float = 10.0) -> SandboxServer:
        """Start serving; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("SandboxServer already started")
        self._sock = bind_socket(self.host, self._requested_port)
        config = uvicorn.Config(self.app, log_config=None, access_log=False, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"koji-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server failed to start")
            time.sleep(0.005)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Ask uvicorn to exit, wait for the thread, close the socket. Idempotent."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def banner(state: SandboxState, base_url: str) -> str:
    brief, config = state.brief, state.config
    lines = [f"Koji sandbox running at {base_url}  (Ctrl-C to stop)", "",
             f"Demo key (all permissions): {DEMO_KEY}", "Other keys:"]
    for key, spec in state.keys.items():
        if key != DEMO_KEY:
            if spec.permissions == ALL_PERMISSIONS:
                perms = "all permissions"
            else:
                perms = ", ".join(sorted(spec.permissions)) or "no permissions"
            note = f" ({spec.description})" if spec.description else ""
            lines.append(f"  {key}  {perms}{note}")
    lines += ["",
              f"Brief: {brief['title']} ({len(brief['questions'])} questions; locales {', '.join(brief['locales'])})"
              + ("" if brief["published"] else " [unpublished]"),
              _languages(brief["locales"]),
              f"Rate limit: {config.rate_limit} requests per {config.window_seconds:g} s per key", "",
              f'Try: curl -X POST {base_url}/api/v1/interviews/start -H "Authorization: Bearer {DEMO_KEY}"']
    return "\n".join(lines)


def _languages(locales: list[str]) -> str:
    """Which of the brief's locales the interviewer speaks throughout, and what happens for the others."""
    from .interviewer import LANGUAGES, speaks

    others = [loc for loc in locales if not speaks(loc)]
    line = f"Interviewer speaks: {', '.join(LANGUAGES)}"
    return line + (f" ({', '.join(others)}: the brief's texts with English prompts)" if others else "")


def run_sandbox(config: SandboxConfig | None = None, host: str = "127.0.0.1", port: int = 8787) -> None:
    """Serve in the foreground until Ctrl-C (the ``koji-mcp sandbox`` command)."""
    app = create_app(config)
    sock = bind_socket(host, port)
    print(banner(app.state.sandbox, _url(host, int(sock.getsockname()[1]))), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="off", timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("Sandbox stopped.", file=sys.stderr, flush=True)


