"""KojiClient: the only code that talks HTTP to Koji.

One `httpx.AsyncClient` per server, timeouts always set, response bodies capped, and retry rules
that never spend a customer's credits twice:
- connect failures (request never sent) are retried a few times with backoff;
- 429 is retried after the wait Koji asks for, when that wait is short (a 429 was not processed);
- a POST that may have reached Koji (read timeout, reset, 5xx) is never retried: it raises with
  `outcome="unknown"` so the caller can tell the user to check before trying again;
- GETs may retry 5xx and resets with backoff.
The client knows nothing of MCP.
"""

from __future__ import annotations

import hashlib

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import anyio
from pydantic import ValidationError

from koji_mcp import USER_AGENT
from koji_mcp.config import Settings
from koji_mcp.koji.errors import (
    COMPLETE,
    MESSAGE,
    READ,
    START,
    BadRequest,
    Conflict,
    Endpoint,
    NotFound,
    SessionGone,
    KojiConnectError,
    KojiProtocolError,
    KojiRateLimited,
    KojiTimeout,
    KojiUnavailable,
    NotKoji,
    Redirected,
    api_error,
)
from koji_mcp.logs import mask_secrets
from koji_mcp.koji.models import ErrorBody, StartRequest, StartResponse
from koji_mcp.koji.ratelimit import Pacer, RateLimitTracker, WaitTooLong
from koji_mcp.koji.replies import (
    MessageReply,
    ReplyFormatError,
    parse_json_reply,
    parse_sse_reply,
)

if TYPE_CHECKING:  # httpx is imported on the first request: startup only needs to answer initialize
    import httpx

logger = logging.getLogger(__name__)

START_PATH = "/api/v1/interviews/start"
INTERVIEW_PATH = "/api/v1/interviews/{id}"
# Koji's docs disagree on these routes; try the current one first, fall back to the older one
# only when the route itself is missing (404/405 without Koji's JSON error body).
MESSAGE_ROUTES = ("/api/v1/interviews/{id}/message", "/api/v1/interviews/{id}/messages")
COMPLETE_ROUTES = ("/api/interview/complete", "/api/v1/interviews/{id}/complete")
MESSAGE_ACCEPT = "text/event-stream, application/json"
PROBE_INTERVIEW_ID = "00000000-0000-0000-0000-000000000000"  # no interview has it
PROBE_TOKEN = "koji-mcp-doctor-probe"
CONNECT_RETRIES = 2
RATE_LIMIT_RETRIES = 2
SERVER_ERROR_RETRIES = 2  # GET only
BACKOFF = (0.2, 0.6)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class KojiResponse:
    """A fully read (and size-capped) answer from Koji."""

    status: int
    headers: httpx.Headers
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        return json.loads(self.content)


KEEPALIVE_SECONDS = 2.0  # an idle connection is reused within this time, else closed (see _http)


class KojiClient:
    """Typed access to Koji's REST API with the retry and error rules above."""

    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        key = api_key if api_key is not None else settings.api_key.get_secret_value() if settings.api_key else ""
        self._key = key
        self.base_url = (base_url or settings.base_url).rstrip("/")
        self._settings = settings
        self._sleep = sleep
        self.rate = RateLimitTracker()
        self.pacer = Pacer(self.rate, window=settings.rate_limit_window)
        self.routes: dict[str, str] = {}  # which route variant worked, per kind ("message", "complete")
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def key_id(self) -> str:
        """Names this base URL + API key without revealing the key (e.g. the shared pacer's row)."""
        return hashlib.sha256(f"{self.base_url}\0{self._key}".encode()).hexdigest()[:32]

    @property
    def _http(self) -> httpx.AsyncClient:
        """The one AsyncClient, created on first use (no network I/O or TLS setup at startup)."""
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                transport=self._transport,
                # connect well inside the total deadline: a connect that hangs must fail as "not sent", not "unknown"
                timeout=httpx.Timeout(self._settings.timeout,
                                      connect=min(self._settings.connect_timeout, self._settings.timeout / 2)),
                headers={
                    "Authorization": f"Bearer {self._key}",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
                follow_redirects=False,
                # Close idle pooled connections before the server does: many close them after 5 s (uvicorn,
                # Node), httpx's own default is 5 s too, and a POST sent on a connection the server is closing
                # at that instant fails mid-request, an outcome that can only be reported as unknown.
                limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # -- endpoints ------------------------------------------------------------------------------

    async def start_interview(self, request: StartRequest, *, max_wait: float | None = None) -> StartResponse:
        """POST /api/v1/interviews/start. Never retried once it may have reached Koji."""
        response = await self.request("POST", START_PATH, json=request.to_body(), max_wait=max_wait)
        self.raise_for_error(response, START, sent=True)
        try:
            started = StartResponse.model_validate(response.json())
        except (ValueError, ValidationError):
            raise KojiProtocolError(
                f"Koji answered {response.status} but the body has no usable interview_id/session_token",
                status=response.status,
            ) from None
        secrets = (self._key, started.session_token)
        return started.model_copy(update={"initial_message": mask_secrets(started.initial_message, secrets)})

    async def send_message(self, interview_id: str, session_token: str, content: str) -> MessageReply:
        """POST the respondent's message; the reply may be JSON or an SSE stream."""
        headers = {"X-Session-Token": session_token}

        async def attempt(route: str) -> KojiResponse:
            return await self.request(
                "POST", route.format(id=quote(interview_id, safe="")), json={"content": content},
                headers=headers, accept=MESSAGE_ACCEPT,
            )

        response = await self._with_fallback("message", MESSAGE_ROUTES, attempt)
        self.raise_for_error(response, MESSAGE, sent=True, secrets=(session_token,))
        try:
            if response.content_type == "text/event-stream":
                reply = parse_sse_reply(response.content.decode("utf-8", "replace"))
            else:
                reply = parse_json_reply(response.json())
        except (ValueError, ReplyFormatError) as exc:
            raise KojiProtocolError(
                f"Koji answered {response.status} but the interviewer's reply could not be read ({exc})",
                status=response.status,
            ) from None
        return reply.model_copy(update={
            "interviewer_message": mask_secrets(reply.interviewer_message, (self._key, session_token)),
            "interview_status": mask_structure(reply.interview_status, (self._key, session_token)),
        })

    async def complete_interview(
        self, interview_id: str, session_token: str, *, reason: str, feedback: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Complete an interview (idempotent at Koji, so retrying it is safe)."""
        extra = {"reason": reason, **({"feedback": feedback} if feedback else {})}

        async def attempt(route: str) -> KojiResponse:
            if "{id}" in route:
                path, body = route.format(id=quote(interview_id, safe="")), extra
            else:
                path, body = route, {"interview_id": interview_id, **extra}
            return await self.request(
                "POST", path, json=body, headers={"X-Session-Token": session_token}, idempotent=True
            )

        response = await self._with_fallback("complete", COMPLETE_ROUTES, attempt)
        self.raise_for_error(response, COMPLETE, sent=True, secrets=(session_token,))
        return mask_structure(_json_object(response, "completion"), (self._key, session_token))

    async def get_interview(self, interview_id: str, *, session_token: str | None = None) -> dict[str, Any]:
        """GET the interview: status, transcript, analysis. Unknown fields are kept.

        Koji's text is returned with our API key and the interview's session token (when the caller
        knows it) masked wherever they appear, whatever field they are under.
        """
        response = await self.request("GET", INTERVIEW_PATH.format(id=quote(interview_id, safe="")))
        secrets = (self._key, session_token or "")
        self.raise_for_error(response, READ, sent=False, secrets=secrets)  # a read changes nothing at Koji
        return mask_structure(_json_object(response, "interview"), secrets)

    async def probe(self, endpoint: Endpoint) -> None:
        """Check that the key may use `endpoint`, with a request Koji must refuse: no credit is spent.

        Koji checks the key's permission before the request itself (koji-api.md §5.2), so a refusal
        *other* than 403 (400 for an invalid start or completion, 404 for the made-up interview,
        401 for its made-up session token) proves the permission is there. Returns normally then;
        raises Forbidden when the permission is missing, and the usual typed errors otherwise
        (Unauthorized, NotKoji, KojiRateLimited, KojiConnectError, …). 429 waits are not taken.
        """
        path = quote(PROBE_INTERVIEW_ID, safe="")
        probe = {"X-Session-Token": PROBE_TOKEN}
        if endpoint is START:  # invalid on two counts: Koji must answer 400 before starting anything
            response = await self.request("POST", START_PATH, json={"respondent": PROBE_TOKEN, "mode": PROBE_TOKEN},
                                          max_wait=0)
        elif endpoint is MESSAGE:
            response = await self._with_fallback("message", MESSAGE_ROUTES, lambda route: self.request(
                "POST", route.format(id=path), json={}, headers=probe, max_wait=0))
        elif endpoint is COMPLETE:
            response = await self._with_fallback("complete", COMPLETE_ROUTES, lambda route: self.request(
                "POST", route.format(id=path), json={"interview_id": PROBE_INTERVIEW_ID, "reason": PROBE_TOKEN},
                headers=probe, max_wait=0))
        else:
            response = await self.request("GET", INTERVIEW_PATH.format(id=path), max_wait=0)
        if 200 <= response.status < 300:
            if endpoint is READ:
                return
            raise KojiProtocolError(
                f"Koji accepted an invalid probe request ({response.status}) instead of refusing it",
                status=response.status,
            )
        try:
            self.raise_for_error(response, endpoint, sent=False)
        except (BadRequest, NotFound, SessionGone, Conflict):
            return  # Koji checked the permission, then refused the request itself

    async def _with_fallback(
        self, kind: str, routes: tuple[str, ...], attempt: Callable[[str], Awaitable[KojiResponse]]
    ) -> KojiResponse:
        """Try the remembered (else current) route; on a missing route, the next one; remember what worked."""
        remembered = self.routes.get(kind)
        order = [remembered, *[r for r in routes if r != remembered]] if remembered else list(routes)
        response: KojiResponse | None = None
        for index, route in enumerate(order):
            response = await attempt(route)
            if route_missing(response) and index < len(order) - 1:
                logger.info("%s route %s is missing at Koji; trying %s", kind, route, order[index + 1])
                continue
            if not route_missing(response):
                self.routes[kind] = route
            return response
        assert response is not None
        return response

    # -- plumbing -------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        accept: str | None = None,
        idempotent: bool = False,
        max_wait: float | None = None,
    ) -> KojiResponse:
        """Send one logical request, retrying only where that cannot double an action.

        `max_wait` bounds how long pacing and 429 waits may sleep (default: the interactive
        limit, 10 s); past it the call fails at once with KojiRateLimited saying when to retry.
        """
        import httpx

        wait_cap = self._settings.max_rate_limit_wait if max_wait is None else max_wait
        repeatable = idempotent or method in {"GET", "HEAD"}
        send_headers = dict(headers or {})
        if accept:
            send_headers["Accept"] = accept
        connect_tries = rate_tries = server_tries = 0
        while True:
            try:
                pause = await self.pacer.claim(wait_cap)
            except WaitTooLong as exc:
                raise KojiRateLimited(
                    "rate_limited",
                    f"Koji's rate limit for this API key ({exc.limit} requests per minute) is used up; "
                    "the request was not sent.",
                    exc.wait,
                    outcome="not_sent",
                ) from None
            if pause > 0:
                await self._sleep(pause)
            started = time.perf_counter()
            try:
                # Once a POST is on the wire, see it through: a cancelled caller must still learn
                # (and record) what Koji did. Waiting before sending stays cancellable. The deadline
                # sits inside the shield: it bounds the whole exchange (connect, send, every byte of
                # the body), which httpx's per-read timeouts do not.
                with anyio.CancelScope(shield=not repeatable), anyio.fail_after(self._settings.timeout):
                    response = await self._send(method, path, json, send_headers)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                if connect_tries < CONNECT_RETRIES:
                    await self._sleep(BACKOFF[min(connect_tries, len(BACKOFF) - 1)])
                    connect_tries += 1
                    continue
                raise KojiConnectError(
                    f"could not connect to Koji at {self.base_url} ({type(exc).__name__}); "
                    "the request was not sent"
                ) from None
            except (httpx.TimeoutException, TimeoutError):
                raise KojiTimeout(
                    f"Koji did not answer within {self._settings.timeout:g} s after the request was sent"
                ) from None
            except httpx.DecodingError:
                raise KojiProtocolError(
                    "Koji's answer could not be decoded (bad content encoding)",
                    outcome="rejected" if repeatable else "unknown",
                ) from None
            except httpx.TransportError as exc:
                if repeatable and server_tries < SERVER_ERROR_RETRIES:
                    await self._sleep(BACKOFF[min(server_tries, len(BACKOFF) - 1)])
                    server_tries += 1
                    continue
                raise KojiUnavailable(
                    f"the connection to Koji failed mid-request ({type(exc).__name__})"
                ) from None
            logger.info(
                "%s %s -> %s (%.0f ms)", method, path, response.status, (time.perf_counter() - started) * 1000
            )
            self.rate.observe(response.headers)
            wait = self.rate.retry_after(response.headers) if response.status == 429 else None
            self.pacer.observe(response.status, response.headers, wait)
            if response.status == 429:
                if wait is not None and wait <= wait_cap and rate_tries < RATE_LIMIT_RETRIES:
                    logger.info("rate limited by Koji; retrying in %.1f s", wait)
                    rate_tries += 1
                    continue  # the pacer now holds every request until Koji's wait is over
                body = _error_body(response)
                raise KojiRateLimited(
                    body.error if body else "rate_limited",
                    body.message if body else "Rate limit exceeded.",
                    wait,
                )
            if response.status >= 500 and repeatable and server_tries < SERVER_ERROR_RETRIES:
                await self._sleep(BACKOFF[min(server_tries, len(BACKOFF) - 1)])
                server_tries += 1
                continue
            return response

    async def _send(self, method: str, path: str, body: Any, headers: dict[str, str]) -> KojiResponse:
        cap = self._settings.max_response_bytes
        async with self._http.stream(method, path, json=body, headers=headers) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise KojiProtocolError(
                        f"Koji's answer ({response.status_code}) was larger than {cap:,} bytes and was not read",
                        status=response.status_code,
                        outcome="unknown" if method not in {"GET", "HEAD"} else "rejected",
                    )
                chunks.append(chunk)
        return KojiResponse(response.status_code, response.headers, b"".join(chunks))

    def raise_for_error(
        self, response: KojiResponse, endpoint: Endpoint, *, sent: bool, secrets: tuple[str, ...] = ()
    ) -> None:
        """Turn a non-2xx answer into the typed error that says what it means on `endpoint`.

        (429 is handled in `request`.) `sent` says whether the request may have acted at Koji (so
        a 5xx leaves its outcome unknown). Upstream text is scrubbed of our own credentials
        before it goes anywhere.
        """
        if 200 <= response.status < 300:
            return

        def scrub(text: str) -> str:
            return mask_secrets(text, (self._key, *secrets))

        body = _error_body(response)
        if response.status >= 500:
            detail = f"{body.error}: {body.message}" if body else _snippet(response)
            raise KojiUnavailable(
                scrub(f"Koji returned HTTP {response.status} ({detail})"),
                status=response.status,
                outcome="unknown" if sent else "rejected",
            )
        if 300 <= response.status < 400:
            location = scrub(response.headers.get("location", "?"))
            raise Redirected(response.status, f"Koji's base URL redirects ({response.status}) to {location}",
                             location=location)
        if body is None:
            raise NotKoji(
                response.status,
                None,
                scrub(f"Koji returned HTTP {response.status} without its JSON error body ({_snippet(response)})"),
            )
        raise api_error(endpoint, response.status, scrub(body.error)[:100], scrub(body.message))


def mask_structure(value: Any, secrets: tuple[str, ...]) -> Any:
    """`mask_secrets` applied to every string (and key) of a JSON-like value."""
    if isinstance(value, str):
        return mask_secrets(value, secrets)
    if isinstance(value, dict):
        return {mask_structure(k, secrets): mask_structure(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_structure(v, secrets) for v in value]
    return value


def route_missing(response: KojiResponse) -> bool:
    """404/405 without Koji's JSON error body: the route does not exist (not "interview not found")."""
    return response.status in (404, 405) and _error_body(response) is None


def _json_object(response: KojiResponse, what: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise KojiProtocolError(f"Koji answered {response.status} but the {what} is not a JSON object",
                                status=response.status)
    return data


def _error_body(response: KojiResponse) -> ErrorBody | None:
    try:
        return ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        return None


def _snippet(response: KojiResponse, limit: int = 120) -> str:
    text = response.content[:limit].decode("utf-8", "replace")
    text = " ".join(text.split())
    kind = response.content_type or "no content type"
    return f"{kind}: {text!r}" if text else f"{kind}, empty body"
