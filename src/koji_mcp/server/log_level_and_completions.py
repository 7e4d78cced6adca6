"""Protocol handlers MCPServer does not provide out of the box: `logging/setLevel` and `completion/complete`.

Registering them makes the server advertise the `logging` and `completions` capabilities (the SDK
derives capabilities from the handlers present), which hosts and the MCP conformance suite expect.

- `logging/setLevel` (protocol <= 2025-11-25; removed in 2026-07-28, where the SDK never routes it):
  koji-mcp sends no `notifications/message`, its logs go to stderr, which hosts show in their MCP
  log view. So the level a client asks for is applied to the `koji_mcp` logger (and remembered in
  `Services.extras["mcp_log_level"]`); the answer is the empty result the spec requires. The level
  is process-wide: over HTTP, the last client to set it wins.
- `completion/complete`: the `conduct_interview` prompt's `locale` argument (common Koji
  languages) and the `koji://interviews/{interview_id}` template's `interview_id` (from the caller's
  ledger, newest first). Anything else completes to an empty list, as the SDK does by default.

Both go through the low-level `add_request_handler`: `MCPServer` has no API for `logging/setLevel`,
and its `@completion()` decorator does not pass the request context, which the ledger lookup needs.
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.types import (
    CompleteRequestParams,
    CompleteResult,
    Completion,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
)

from koji_mcp.interviews.services import current_owner
from koji_mcp.server.sdk_internals import lowlevel_server

logger = logging.getLogger(__name__)

PACKAGE_LOGGER = "koji_mcp"
INTERVIEW_TEMPLATE = "koji://interviews/{interview_id}"
LOCALE_PROMPT, LOCALE_ARGUMENT = "conduct_interview", "locale"
MAX_VALUES = 100  # the spec's cap per completion response
LEDGER_SCAN = 2_000  # rows read at most to complete an interview_id prefix
LEDGER_PAGE = 200
UNCONFIRMED = ("starting", "unknown")  # placeholder ids, not interviews Koji knows

# Languages offered for `locale`, most requested first. Any BCP 47 code is accepted by the prompt;
# these are suggestions, matched case-insensitively on the prefix typed so far.
LOCALES: tuple[str, ...] = (
    "en", "en-US", "en-GB", "es", "es-MX", "fr", "de", "pt-BR", "pt-PT", "it", "nl", "sv", "da", "nb",
    "fi", "pl", "cs", "tr", "ru", "uk", "ar", "he", "hi", "id", "ja", "ko", "zh-CN", "zh-TW",
)

# MCP (RFC 5424) levels onto Python's.
PYTHON_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "notice": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "alert": logging.CRITICAL,
    "emergency": logging.CRITICAL,
}


def register_protocol_extras(server: MCPServer) -> None:
    """Register `logging/setLevel` and `completion/complete` on `server`."""
    lowlevel = lowlevel_server(server)  # no public API for logging/setLevel (mcp 2.3)
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("completion/complete", CompleteRequestParams, complete)


async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
    level = PYTHON_LEVELS[params.level]
    logging.getLogger(PACKAGE_LOGGER).setLevel(level)
    extras = getattr(ctx.lifespan_context, "extras", None)
    if isinstance(extras, dict):
        extras["mcp_log_level"] = params.level
    logger.info("log level set to %s by the MCP client", params.level)
    return EmptyResult()


async def complete(ctx: ServerRequestContext[Any], params: CompleteRequestParams) -> CompleteResult:
    ref, argument = params.ref, params.argument
    values: list[str] = []
    if isinstance(ref, PromptReference) and ref.name == LOCALE_PROMPT and argument.name == LOCALE_ARGUMENT:
        values = complete_locale(argument.value)
    elif (
        isinstance(ref, ResourceTemplateReference)
        and ref.uri == INTERVIEW_TEMPLATE
        and argument.name == "interview_id"
    ):
        values = complete_interview_id(ctx.lifespan_context, argument.value)
    more = len(values) > MAX_VALUES  # then the ledger scan may have stopped early: total unknown
    return CompleteResult(
        completion=Completion(values=values[:MAX_VALUES], total=None if more else len(values), has_more=more)
    )


def complete_locale(prefix: str) -> list[str]:
    typed = prefix.strip().lower()
    return [code for code in LOCALES if code.lower().startswith(typed)]


def complete_interview_id(services: Any, prefix: str) -> list[str]:
    """Interview ids in the caller's ledger starting with `prefix`, newest first ([] without a ledger)."""
    ledger = getattr(services, "ledger", None)
    if ledger is None:
        return []
    owner = current_owner()
    found: list[str] = []
    before: int | None = None
    scanned = 0
    while scanned < LEDGER_SCAN:
        try:
            page, _ = ledger.list(owner, limit=LEDGER_PAGE, before_seq=before)
        except Exception:  # a broken ledger must not break completion
            logger.exception("could not read the ledger to complete interview_id")
            return found
        for entry in page:
            if entry.status not in UNCONFIRMED and entry.interview_id.startswith(prefix):
                found.append(entry.interview_id)
        scanned += len(page)
        if len(page) < LEDGER_PAGE or len(found) > MAX_VALUES:
            break
        before = page[-1].seq
    return found
