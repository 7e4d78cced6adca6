"""interviews/start_once.py: reserve in the ledger, send, then confirm, release or mark unknown.

Most of its guarantees are tested through the tools (test_start_interview.py, test_start_errors.py,
test_batch.py); here are the ones only reachable from below the MCP layer.
"""

from __future__ import annotations

import time

import anyio
import pytest

from koji_mcp.interviews.services import open_services
from koji_mcp.interviews.start_once import start_one
from koji_mcp.koji.models import StartRequest

pytestmark = pytest.mark.anyio


async def test_a_start_cancelled_while_pacing_sends_nothing_and_leaves_no_row(sandbox, settings) -> None:
    async with open_services(settings) as services:
        services.koji.rate.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0",
                                    "x-ratelimit-reset": str(int(time.time()) + 30)})
        services.koji.pacer.observe(200, {}, None)
        began = time.monotonic()
        with anyio.move_on_after(0.3):
            await start_one(services, "local", StartRequest(), max_wait=60)
        assert time.monotonic() - began < 2
        assert services.ledger.list(limit=10)[1] == 0
    assert sandbox.requests() == []
