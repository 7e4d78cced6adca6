"""`koji-mcp demo --app`: click through an interview in the MCP App view, in your own browser.

One local process: the Koji sandbox (real HTTP, demo key, throwaway state) and koji-mcp over streamable
HTTP on 127.0.0.1, which also serves a tiny MCP Apps host page at `/` (app_demo.html beside this module).
The page is an MCP client of that server: it calls start_interview, renders the view the tool points at
(ui://koji/interview.html) and relays the view's tool calls. Nothing leaves the machine.
"""

from __future__ import annotations

import sys
import tempfile
import webbrowser
from importlib import resources
from socket import socket

import anyio

from koji_mcp.config import EXIT_USAGE, Settings


def host_page() -> str:
    return resources.files(__package__).joinpath("app_demo.html").read_text(encoding="utf-8")


async def _serve(settings: Settings, listener: socket) -> None:
    from starlette.requests import Request
    from starlette.responses import HTMLResponse

    from koji_mcp.interviews.services import open_services
    from koji_mcp.server.app import build_server, run_transport

    async with open_services(settings) as services:
        server = build_server(settings, services)
        page = host_page()

        @server.custom_route("/", methods=["GET"])
        async def index(_: Request) -> HTMLResponse:
            return HTMLResponse(page, headers={"Cache-Control": "no-store"})

        port = listener.getsockname()[1]
        await run_transport(server, "streamable-http", host="127.0.0.1", port=port, listener=listener)


def run_app_demo(port: int = 8765, open_browser: bool = True) -> int:
    from koji_mcp.sandbox import DEMO_KEY, SandboxServer
    from koji_mcp.server.app import PortUnavailable, bind_listener

    try:
        listener = bind_listener("127.0.0.1", port)
    except PortUnavailable as exc:
        print(f"koji-mcp demo --app: {exc}", file=sys.stderr)
        return EXIT_USAGE
    with tempfile.TemporaryDirectory(prefix="koji-mcp-app-demo-") as state_dir, SandboxServer() as sandbox:
        settings = Settings(api_key=DEMO_KEY, base_url=sandbox.base_url, state_dir=state_dir)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        print(f"koji-mcp demo --app: open {url} and press 'Start interview' (Koji sandbox at {sandbox.base_url}; "
              "Ctrl-C stops)", flush=True)
        if open_browser:
            webbrowser.open(url)
        try:
            anyio.run(_serve, settings, listener)
        except KeyboardInterrupt:
            pass
    return 0
