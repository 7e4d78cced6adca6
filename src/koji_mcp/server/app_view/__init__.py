"""The interview as an MCP App: `ui://koji/interview.html`, opened by start_interview.

- The view is one self-contained HTML document (interview.html beside this module, hand-written,
  no build step): it speaks the MCP Apps postMessage protocol (`ui/initialize`,
  `ui/notifications/tool-result`, `tools/call` through the host), renders Koji's text with
  `textContent` only, and calls send_interview_message, complete_interview and get_interview. It never
  sees a session token: those tools take the interview_id.
- It is registered through the SDK's own `mcp.server.apps.Apps.add_html_resource` (MIME type
  `text/html;profile=mcp-app`, an empty CSP: the view loads nothing and connects nowhere).
- start_interview's `_meta` (`ui.resourceUri` and ChatGPT's `openai/outputTemplate`) is stamped
  on its ToolSpec (tools/__init__.py) and so lands in the catalog; clients without Apps ignore it and
  get the same text and structuredContent as before.
- Negotiation: the SDK answers `capabilities.extensions` only on 2026-07-28 (its 2025-11-25 result
  sieve drops the field). `declare_extension` puts the extension back into a 2025-11-25 `initialize`
  result when the client declared it, so hosts on the older protocol render the view too.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from typing import Any

VIEW_URI = "ui://koji/interview.html"
VIEW_META: dict[str, Any] = {"ui": {"resourceUri": VIEW_URI}, "openai/outputTemplate": VIEW_URI}
EXTENSION_ID = "io.modelcontextprotocol/ui"  # == mcp.server.apps.EXTENSION_ID (tests check); no SDK import here


@lru_cache(maxsize=1)
def view_html() -> str:
    return resources.files(__package__).joinpath("interview.html").read_text(encoding="utf-8")


def view_extension() -> Any:
    """The SDK's Apps extension carrying the interview view (pass it to MCPServer(extensions=[...]))."""
    from mcp.server.apps import Apps, ResourceCsp

    apps = Apps()
    apps.add_html_resource(
        VIEW_URI, view_html(), name="interview-view", title="Koji interview",
        description="Answer a Koji interview in the chat: the interviewer's messages, answer widgets, Complete.",
        csp=ResourceCsp(), prefers_border=True,
    )
    return apps


async def declare_extension(ctx: Any, call_next: Any) -> Any:
    """Low-level middleware: answer a declared Apps extension in a 2025-11-25 `initialize` too."""
    result = await call_next(ctx)
    if ctx.method != "initialize" or not isinstance(result, dict):
        return result
    params = ctx.params if isinstance(ctx.params, Mapping) else {}
    client = params.get("capabilities")
    declared = client.get("extensions") if isinstance(client, Mapping) else None
    capabilities = result.get("capabilities")
    if isinstance(declared, Mapping) and EXTENSION_ID in declared and isinstance(capabilities, dict):
        extensions = capabilities.setdefault("extensions", {})
        if isinstance(extensions, dict):
            extensions.setdefault(EXTENSION_ID, {})
    return result
