"""The long-lived things tools share: settings, the Koji client, the ledger, and the sandbox.

They are opened once per process around the transport (not per MCP session: the SSE transport runs
the server lifespan once per connection, and rate limiting and the ledger must be shared).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from koji_mcp.config import Settings
from koji_mcp.koji.client import KojiClient
from koji_mcp.interviews.ledger import LOCAL_OWNER, Ledger

if TYPE_CHECKING:
    import httpx

    from koji_mcp.interviews.jobs import JobRunner

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    koji: KojiClient
    ledger: Ledger
    sandbox: Any = None
    extras: dict[str, Any] = field(default_factory=dict)
    jobs: JobRunner | None = None  # background batch jobs (servers only; the CLI runs batches itself)


@asynccontextmanager
async def open_services(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None, jobs: bool = False
) -> AsyncIterator[Services]:
    """Start the in-process sandbox if asked, then the Koji client and the ledger.

    With `jobs`, batch jobs run in the background of these services, and unfinished jobs found
    in the ledger (a crashed or closed earlier server) are resumed.
    """
    async with AsyncExitStack() as stack:
        base_url, api_key, sandbox = settings.base_url, None, None
        if settings.sandbox:
            from koji_mcp.sandbox import (  # lazy: only `--sandbox` needs it
                DEMO_KEY,
                SandboxServer,
            )

            sandbox = stack.enter_context(SandboxServer())
            base_url, api_key = sandbox.base_url, DEMO_KEY
            logger.info("in-process Koji sandbox at %s", base_url)
        koji = KojiClient(settings, base_url=base_url, api_key=api_key, transport=transport)
        stack.push_async_callback(koji.aclose)
        ledger = Ledger.open(settings.state_dir, koji.base_url)
        stack.callback(ledger.close)
        services = Services(settings=settings, koji=koji, ledger=ledger, sandbox=sandbox)
        if jobs:
            from koji_mcp.interviews.jobs import JobRunner

            group = await stack.enter_async_context(anyio.create_task_group())
            services.jobs = JobRunner(services, group)
            stack.push_async_callback(services.jobs.shutdown)  # runs before the group exits
            services.jobs.start_watching()
        yield services


def current_owner() -> str:
    """Who is calling: the authenticated HTTP client's id, or "local" (stdio, no auth)."""
    try:
        from mcp.server.auth.middleware.auth_context import get_access_token
    except ImportError:  # pragma: no cover - SDK layout change
        return LOCAL_OWNER
    token = get_access_token()
    return token.client_id if token is not None and token.client_id else LOCAL_OWNER
