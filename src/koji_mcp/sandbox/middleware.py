"""ASGI middleware that records every API request and injects queued faults.

It wraps the whole app, so it also sees requests to missing routes (plain 404) and
requests rejected with 401/429. ``/_sandbox/*`` control requests bypass it entirely.

A fault replaces the response. With ``after_processing`` the request is first handled
normally (e.g. an interview really starts) and its response discarded – the "lost
response" case that makes retrying a non-idempotent POST dangerous. A fault without a
``status`` only delays, then lets the real response through. Fault responses carry
exactly the fault's headers (no rate-limit headers: they stand for proxies and crashes).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .state import Fault, SandboxState

__all__ = ["CONTROL_PREFIX", "RecorderMiddleware"]

CONTROL_PREFIX = "/_sandbox"


class RecorderMiddleware:
    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        raw = await _read_body(receive)
        entry = _log_entry(scope, raw)
        self.state.requests.append(entry)
        fault = self.state.take_fault(scope["method"], path)

        pending: list[bytes] = [raw]

        async def replay() -> Message:
            if pending:
                return {"type": "http.request", "body": pending.pop(), "more_body": False}
            return await receive()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            await send(message)

        if fault is None or fault.status is None:
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            await self.app(scope, replay, recording_send)
            return
        if fault.after_processing:
            async def discard(message: Message) -> None:
                return None

            await self.app(scope, replay, discard)
        if fault.delay:
            await asyncio.sleep(fault.delay)
        await _send_fault(fault, recording_send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _log_entry(scope: Scope, raw: bytes) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    body = raw.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        parsed = None
    return {"method": scope["method"], "path": scope["path"], "headers": headers,
            "json": parsed, "body": body, "status": None}


async def _send_fault(fault: Fault, send: Send) -> None:
    extra = {k.lower(): v for k, v in fault.headers.items()}
    if fault.has_json:
        payload = json.dumps(fault.json).encode()
        default_type = "application/json"
    else:
        payload = (fault.body or "").encode()
        default_type = "text/plain; charset=utf-8"
    content_type = fault.content_type or extra.get("content-type") or default_type
    headers = [(b"content-type", content_type.encode("latin-1")),
               (b"content-length", str(len(payload)).encode())]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
                if k not in ("content-type", "content-length")]
    await send({"type": "http.response.start", "status": fault.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})
