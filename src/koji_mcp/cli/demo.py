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
        "PYTHONPATH": os.pathsep.join(p for p in [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")] if p),
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
            prompts = await session.list_prompts()
            _say(f"✓ prompts: {', '.join(p.name for p in prompts.prompts)}")
            started = await _call(
                session, "start_interview", {"respondent": DEMO_RESPONDENT, "mode": "text", "locale": "en"}
            )
            _say(f"  interview_id: {started['interview_id']}")
            _say("  Koji's interviewer says:")
            _say(_wrap(started["initial_message"]))
            await run_lifecycle(session, started["interview_id"])


DEMO_ANSWERS = [
    "The first week was mixed: setup was confusing, but the dashboards were great once I found them.",
    "I'd give the setup a 6 out of 10.",
    "The video tutorials helped me the most.",
    "So far I've used Dashboards, Reports and Alerts.",
    "Lower price matters most, then faster performance, then more integrations, then better documentation.",
    "Yes, I would recommend it.",
]


async def run_lifecycle(session: ClientSession, interview_id: str) -> None:
    """Answer every question, complete the interview, then print the transcript and the analysis."""
    for answer in DEMO_ANSWERS:
        reply = await _call(session, "send_interview_message", {"interview_id": interview_id, "content": answer})
        _say("  Koji's interviewer says:")
        _say(_wrap(reply["interviewer_message"]))
        if reply["ended"]:
            break
    done = await _call(session, "complete_interview", {"interview_id": interview_id, "reason": "natural"})
    _say(f"  completed (reason {done['completion_reason']}); Koji is analysing…")
    for _ in range(20):
        result = await _call(session, "get_interview", {"interview_id": interview_id, "include_transcript": True})
        if result["analysis_status"] == "ready":
            break
        await anyio.sleep(0.5)
    _say("\nTranscript")
    for message in result.get("transcript", []):
        _say(f"  [{message['role']}]")
        _say(_wrap(message["content"]))
    analysis = result.get("analysis") or {}
    _say("\nAnalysis")
    if analysis.get("summary"):
        _say(_wrap(f"Summary: {analysis['summary']}", "  "))
    if analysis.get("themes"):
        _say("  Themes: " + ", ".join(f"{t['name']} ({t['mentions']})" for t in analysis["themes"]))
    _say("  Structured answers:")
    for answer in result.get("structured_answers", []):
        value = json.dumps(answer["structuredValue"], ensure_ascii=False)
        _say(f"    {answer['questionId']} [{answer['questionType']}] {answer['questionText']}")
        _say(f"       -> {value} (confidence {answer.get('confidence', 0):.2f})")
    listed = await _call(session, "list_interviews", {"limit": 5})
    _say(f"  the ledger holds {listed['total']} interview(s); session tokens never left the server.")


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
