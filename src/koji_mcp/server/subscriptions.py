"""Resource subscriptions: `notifications/resources/updated` when a batch job advances.

Two protocol generations, one `updated(uri)`:
- 2025-11-25 and older: clients send `resources/subscribe {uri}`; we remember their session per URI
  and send `notifications/resources/updated` to it. MCPServer has no API for these two requests,
  so they are registered on the low-level server (the same seam as logging/setLevel).
- 2026-07-28: clients open a `subscriptions/listen` stream; the SDK's listen handler fans events
  out from the subscription bus we hand to MCPServer (a public constructor argument).
"""

from __future__ import annotations

import logging
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus, ResourceUpdated
from mcp.types import EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

logger = logging.getLogger(__name__)


class Subscriptions:
    """Who wants to hear about which resource URI, across both protocol generations."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self._sessions: dict[str, list[Any]] = {}  # dropped when a send fails (closed session)

    def register(self, server: MCPServer[Any]) -> None:
        lowlevel = server._lowlevel_server  # no public API for resources/subscribe (mcp 2.3)
        lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, self.subscribe)
        lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, self.unsubscribe)

    async def subscribe(self, ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        sessions = self._sessions.setdefault(str(params.uri), [])
        if ctx.session not in sessions:
            sessions.append(ctx.session)
        return EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        sessions = self._sessions.get(str(params.uri))
        if sessions is not None and ctx.session in sessions:
            sessions.remove(ctx.session)
        return EmptyResult()

    async def updated_batch(self, batch_id: str) -> None:
        await self.updated(f"koji://batches/{batch_id}")

    async def updated(self, uri: str) -> None:
        await self.bus.publish(ResourceUpdated(uri=uri))
        for session in list(self._sessions.get(uri, ())):
            try:
                await session.send_resource_updated(uri)
            except Exception:  # a closed session: forget it
                logger.debug("dropping a closed subscriber of %s", uri)
                self._sessions[uri].remove(session)
