"""The interview view (ui://koji/interview.html) in real headless Chromium, hosted by a minimal MCP Apps
host page (tests/browser/app_host.cjs) against a real `koji-mcp serve` over streamable HTTP on the sandbox.

Run by `make browser` (it installs Debian's chromium and playwright-core first); marked `browser`, so plain
`make test` deselects it. Screenshots per step land in the test's tmp output folder (printed on failure).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from koji_mcp.sandbox import DEMO_KEY
from tests.browser.test_consent_chromium import CHROMIUM, NODE_MODULES
from tests.conftest import koji_mcp_command, subprocess_env
from tests.e2e.test_http import free_port, wait_for_port

pytestmark = pytest.mark.browser
DRIVER = Path(__file__).with_name("app_host.cjs")
VIEW = Path(__file__).resolve().parents[2] / "src" / "koji_mcp" / "server" / "app_view" / "interview.html"

ANSWERS = {
    "text": "The first week was smooth, but the onboarding emails were noisy.",
    "scale": "8",
    "single": "Video tutorials",
    "multiple": ["Dashboards", "Alerts"],
    # from [Faster performance, Better documentation, More integrations, Lower price]
    "moves": [["Lower price", "up", 3], ["Better documentation", "down", 1]],
    "yes_no": "Yes",
}
RANKED = ["Lower price", "Faster performance", "More integrations", "Better documentation"]
SENT = [ANSWERS["text"], "8", "Video tutorials", "Dashboards, Alerts", ", ".join(RANKED), "Yes"]


def run_driver(args: dict) -> dict:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run `make browser` (it installs Debian's chromium)"
    assert (NODE_MODULES / "playwright-core").is_dir(), "playwright-core is missing: run `make browser`"
    proc = subprocess.run(["node", str(DRIVER), json.dumps(args)], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "NODE_PATH": str(NODE_MODULES), "CHROMIUM": CHROMIUM})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture
def mcp_url(sandbox, tmp_path) -> Iterator[str]:
    port = free_port()
    env = subprocess_env(KOJI_API_KEY=DEMO_KEY, KOJI_BASE_URL=sandbox.base_url, KOJI_MCP_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([*koji_mcp_command(), "serve", "--transport", "streamable-http", "--port", str(port)],
                            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.anyio
@pytest.mark.parametrize("bridge", ["official", "hand-written", "hand-written-content-only"])
async def test_a_whole_interview_answered_in_the_view(mcp_url, sandbox, tmp_path, bridge: str) -> None:
    """`official`: the host side is @modelcontextprotocol/ext-apps's AppBridge with the official MCP client;
    `hand-written`: the page answers the protocol itself (and the driver is an MCP client on 2025-11-25);
    `hand-written-content-only`: the same, handing the view start_interview's text content only."""
    if bridge == "official":
        assert (NODE_MODULES / "@modelcontextprotocol" / "ext-apps").is_dir(), "ext-apps is missing: run `make browser`"
    out = tmp_path / "screenshots"
    out.mkdir()
    seen = run_driver({"scenario": "interview", "mcp": mcp_url, "out": str(out), "answers": ANSWERS, "bridge": bridge})
    assert seen["bridge"] == bridge
    iid = seen["interviewId"]

    assert seen["extensions"] == {"io.modelcontextprotocol/ui": {}}  # declared back on 2025-11-25
    assert seen["types"] == ["scale", "single_choice", "multiple_choice", "ranking", "yes_no"]
    assert seen["ranked"] == RANKED
    assert seen["respondent"] == SENT
    assert len(seen["interviewer"]) == 7 and seen["interviewer"][-1].startswith("That's all my questions.")
    # the view called exactly these tools, with the interview_id and never a session token
    calls = seen["viewCalls"]
    assert [c["name"] for c in calls[:7]] == ["send_interview_message"] * 6 + ["complete_interview"]
    assert [c["arguments"] for c in calls[:6]] == [{"interview_id": iid, "content": s} for s in SENT]
    assert calls[6]["arguments"] == {"interview_id": iid, "reason": "natural"}
    assert {c["name"] for c in calls[7:]} == {"get_interview"}
    assert seen["hostLog"][:2] == ["ui/initialize", "ui/notifications/initialized"]
    # the model is told once, at the end, where to read the outcome
    assert seen["modelContext"] == [{"content": [{"type": "text", "text": (
        f"The respondent answered interview {iid} in the interview view and completed it. Read the summary, themes "
        f'and structured answers with get_interview(interview_id="{iid}").')}]}]
    # the sandbox received exactly those answers
    posted = [r for r in sandbox.requests() if r["method"] == "POST" and r["path"].rstrip("s").endswith("/message")]
    assert [r["json"] for r in posted] == [{"content": s} for s in SENT]
    assert seen["status"] == "Completed" and seen["summary"].startswith("Robin answered 6 of 6 questions")
    assert seen["answers"] == [
        "How easy was it to get set up?: 8",
        "Which resource helped you most while getting started?: Video tutorials",
        "Which features have you used so far?: Dashboards, Alerts",
        "Please rank these improvements from most to least important to you.: " + ", ".join(RANKED),
        "Would you recommend the product to a colleague?: Yes",
    ]
    assert seen["theme"] == "dark" and seen["background"] == "rgb(20, 22, 26)"  # the host's variables
    assert seen["consoleErrors"] == [] and seen["external"] == []
    assert len(seen["shots"]) == 9 and all((out / s).stat().st_size > 1000 for s in seen["shots"])
    # the model reads the same outcome as typed structured answers
    async with Client(mcp_url, mode="legacy") as c:
        got = (await c.call_tool("get_interview", {"interview_id": iid})).structured_content
    typed = {a["questionId"]: (a["questionType"], a["structuredValue"]) for a in got["structured_answers"]}
    assert typed == {"q2": ("scale", 8), "q3": ("single_choice", "Video tutorials"),
                     "q4": ("multiple_choice", ["Dashboards", "Alerts"]), "q5": ("ranking", RANKED),
                     "q6": ("yes_no", True)}


def test_hostile_interviewer_text_renders_inert(tmp_path) -> None:
    message = ('<script>parent.postMessage({jsonrpc:"2.0",method:"pwned"},"*")</script>'
               '<img src=x onerror="parent.postMessage({jsonrpc:\'2.0\',method:\'pwned\'},\'*\')">Hello & <b>bold</b>')
    seen = run_driver({"scenario": "hostile", "view": str(VIEW), "out": str(tmp_path), "message": message})
    assert seen["shown"] == message  # shown as text, character for character
    assert seen["imgs"] == 0 and seen["scripts"] == 1  # no element created from Koji's text
    assert "pwned" not in seen["hostLog"] and seen["external"] == [] and seen["calls"] == []


def test_demo_app_page_hosts_the_view(tmp_path) -> None:
    """`koji-mcp demo --app`: its own host page, its own sandbox; one answer through the view."""
    port = free_port()
    proc = subprocess.Popen([*koji_mcp_command(), "demo", "--app", "--no-browser", "--port", str(port)],
                            env=subprocess_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)
        seen = run_driver({"scenario": "demo", "url": f"http://127.0.0.1:{port}/", "out": str(tmp_path),
                           "answer": "It went well."})
    finally:
        proc.terminate()
        proc.wait(10)
    assert seen["problem"] == "" and seen["consoleErrors"] == [] and seen["external"] == []
    assert seen["interviewer"][0].startswith("Hi Robin! Thanks for taking the time")
    assert seen["interviewer"][1].endswith("Please answer with a number from 1 to 10.")
    assert seen["widget"] == "scale"
    assert "Apps extension declared" in seen["log"] and "ui://koji/interview.html (text/html;profile=mcp-app)" in seen["log"]
    assert (tmp_path / "demo.png").stat().st_size > 1000
