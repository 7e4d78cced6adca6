"""The long-lived things tools share: settings, the Koji client and the ledger.

They are opened once per process around the transport (not per MCP session: the SSE transport runs
the server lifespan once per connection, and rate limiting and the ledger must be shared).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from koji_mcp.config import MEMORY_STATE_DIR, ConfigError, Settings
from koji_mcp.koji.client import KojiClient
from koji_mcp.interviews.database import PostgresDatabase
from koji_mcp.interviews.ledger import Ledger, check_state_dir
from koji_mcp.interviews.shared_pacing import DatabasePaceStore

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

SANDBOX_LEDGER_URL = "sandbox:"  # the in-process sandbox's port changes per run; its ledger rows are kept under this fixed origin
SANDBOX_STATE_FILE = "sandbox-state.json"


@dataclass
class Services:
    settings: Settings
    koji: KojiClient
    ledger: Ledger
    jobs: Any = None  # interviews.jobs.JobRunner, set by jobs.run_jobs (servers only; the CLI runs batches itself)


@asynccontextmanager
async def open_services(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[Services]:
    """Open the ledger, start the in-process sandbox if asked, then the Koji client.

    With the sandbox, the ledger and the sandbox's own interviews live in `settings.ledger_dir`
    (`<state dir>/sandbox/`), so successive `serve --sandbox` or `batch --sandbox` processes share
    them as they would share Koji, and nothing of the sandbox enters the real ledger.
    """
    async with AsyncExitStack() as stack:
        base_url, api_key = settings.base_url, None
        if settings.sandbox and settings.state_dir != MEMORY_STATE_DIR:
            # the sandbox's ledger lives in STATE_DIR/sandbox/: the state dir itself must be trusted too
            parent = Path(settings.state_dir).expanduser()
            parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            check_state_dir(parent)
        ledger = Ledger.open(settings.ledger_dir, SANDBOX_LEDGER_URL if settings.sandbox else settings.base_url,
                             database_url=settings.ledger_database_url)
        stack.callback(ledger.close)
        if settings.sandbox:
            from koji_mcp.sandbox import (  # lazy: only `--sandbox` needs it
                DEMO_KEY,
                SandboxConfig,
                SandboxServer,
            )

            memory = settings.ledger_dir == MEMORY_STATE_DIR
            state_file = None if memory else str(Path(settings.ledger_dir) / SANDBOX_STATE_FILE)
            try:
                sandbox = stack.enter_context(SandboxServer(SandboxConfig(state_file=state_file)))
            except RuntimeError as exc:  # e.g. a damaged state file: say which, and how to start afresh
                raise ConfigError(f"cannot start the sandbox: {exc}") from None
            base_url, api_key = sandbox.base_url, DEMO_KEY
            logger.info("in-process Koji sandbox at %s (%s)", base_url,
                        "in memory: its interviews end with this process" if memory else f"interviews kept in {state_file}")
        koji = KojiClient(settings, base_url=base_url, api_key=api_key, transport=transport)
        stack.push_async_callback(koji.aclose)
        if isinstance(ledger.db, PostgresDatabase):  # replicas share one schedule per key: one Koji rate limit
            koji.pacer.store = DatabasePaceStore(ledger.db, koji.key_id)
            logger.info("ledger, batch jobs, OAuth state and Koji pacing in PostgreSQL at %s", ledger.path)
        services = Services(settings=settings, koji=koji, ledger=ledger)
        yield services

