"""`koji-mcp demo`: a real MCP client drives koji-mcp over stdio against the local sandbox.

Nothing is faked: the sandbox is a real HTTP server, koji-mcp runs as a subprocess speaking MCP on
stdin/stdout, and the client is the MCP SDK's own. It is the quickest proof that the whole chain works.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

DEMO_RESPONDENT = {
    "external_id": "demo-user-001",
    "display_name": "Jane Doe",
    "metadata": {"plan": "pro", "seats": 12, "source": "koji-mcp demo"},
}


def _say(text: str = "") -> None:
    print(text, flush=True)


def _wrap(text: str, indent: str = "    ") -> str:
    return "\n".join(
        textwrap.fill(line, width=96, initial_indent=indent, subsequent_indent=indent) if line else ""
        for line in text.splitlines()
    )


def server_params(base_url: str, api_key: str, state_dir: str) -> StdioServerParameters:
    env = {
        "KOJI_API_KEY": api_key,
        "KOJI_BASE_URL": base_url,
        "KOJI_MCP_STATE_DIR": state_dir,
        "PYTHONPATH": os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")] if p),
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "koji_mcp", "serve"], env=env)


async def _call(session: ClientSession, name: str, args: dict[str, Any]) -> dict[str, Any]:
    _say(f"\n→ {name} {json.dumps(args, ensure_ascii=False)}")
    result = await session.call_tool(name, args)
    if result.is_error:
        raise RuntimeError(f"{name} failed:\n{result.content[0].text}")
    return result.structured_content or {}


async def _run(base_url: str, api_key: str, state_dir: str, errlog: Any) -> None:
    async with stdio_client(server_params(base_url, api_key, state_dir), errlog=errlog) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            _say(f"✓ connected to {init.server_info.name} {init.server_info.version} over stdio "
                 f"(protocol {init.protocol_version})")
            tools = await session.list_tools()
            _say(f"✓ tools: {', '.join(t.name for t in tools.tools)}")
            started = await _call(
                session, "start_interview", {"respondent": DEMO_RESPONDENT, "mode": "text", "locale": "en"}
            )
            _say(f"  interview_id: {started['interview_id']}")
            _say("  Koji's interviewer says:")
            _say(_wrap(started["initial_message"]))
            await run_lifecycle(session, started["interview_id"])


async def run_lifecycle(session: ClientSession, interview_id: str) -> None:
    """Extended by later steps of the demo (messages, completion, analysis) when those tools exist."""
    tools = {t.name for t in (await session.list_tools()).tools}
    if "send_interview_message" not in tools:
        return


def run_demo() -> int:
    from koji_mcp.sandbox import DEMO_KEY, SandboxServer

    _say("koji-mcp demo: a real MCP client talks to koji-mcp over stdio, which talks HTTP to a local Koji sandbox.")
    with tempfile.TemporaryDirectory(prefix="koji-mcp-demo-") as state_dir, SandboxServer() as sandbox:
        _say(f"✓ Koji sandbox listening at {sandbox.base_url} (demo key {DEMO_KEY[:12]}…)")
        log_path = Path(state_dir) / "server.log"
        with open(log_path, "w") as errlog:
            try:
                anyio.run(_run, sandbox.base_url, DEMO_KEY, state_dir, errlog)
            except Exception as exc:  # show the server's log: it says why
                errlog.flush()
                _say(f"\n✗ demo failed: {exc}")
                _say("koji-mcp's stderr:\n" + log_path.read_text()[-4000:])
                return 1
    _say("\n✓ demo finished: everything above went through MCP over stdio and real HTTP.")
    return 0
