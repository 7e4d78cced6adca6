"""Per-key sliding-window rate limit and the X-RateLimit-* headers."""

from __future__ import annotations

import time

import httpx

from koji_mcp.sandbox import DEMO_KEY, READ_ONLY_KEY

AUTH = {"Authorization": f"Bearer {DEMO_KEY}"}
GET_UNKNOWN = "/api/v1/interviews/00000000-0000-4000-8000-000000000000"


def _headers(r: httpx.Response) -> tuple[int, int, int]:
    return (int(r.headers["x-ratelimit-limit"]), int(r.headers["x-ratelimit-remaining"]),
            int(r.headers["x-ratelimit-reset"]))


def test_limit_headers_429_and_no_retry_after(make_server, api_error):
    server = make_server(rate_limit=3, window_seconds=30)
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        rs = [c.post("/api/v1/interviews/start", json={}), c.get(GET_UNKNOWN), c.post("/api/v1/interviews/start")]
        assert [r.status_code for r in rs] == [201, 404, 201]
        assert [_headers(r)[:2] for r in rs] == [(3, 2), (3, 1), (3, 0)]
        now = time.time()
        resets = {_headers(r)[2] for r in rs}
        assert len(resets) == 1 and now < resets.pop() <= now + 31
        r = c.post("/api/v1/interviews/start", json={})
        assert api_error(r, 429, "rate_limited") == "Rate limit exceeded. Please retry after the window resets."
        limit, remaining, reset = _headers(r)
        assert (limit, remaining) == (3, 0) and reset > time.time()
        assert "retry-after" not in r.headers
        # a 429 on any route, and the limit is per key
        assert c.get(GET_UNKNOWN).status_code == 429
        r = c.get(GET_UNKNOWN, headers={"Authorization": f"Bearer {READ_ONLY_KEY}"})
        assert r.status_code == 404 and _headers(r)[:2] == (3, 2)
        # unauthenticated requests are rejected first, not counted, and still carry headers
        r = c.get(GET_UNKNOWN, headers={"Authorization": "Bearer pk_live_unknown"})
        assert r.status_code == 401 and _headers(r)[:2] == (3, 3)


def test_retry_after_when_configured(make_server):
    server = make_server(rate_limit=1, window_seconds=30, retry_after_header=True)
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        assert "retry-after" not in c.get(GET_UNKNOWN).headers
        r = c.get(GET_UNKNOWN)
        assert r.status_code == 429
        assert 1 <= int(r.headers["retry-after"]) <= 30


def test_window_slides_and_rejections_do_not_count(make_server):
    server = make_server(rate_limit=3, window_seconds=0.6)
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        t0 = time.monotonic()
        assert c.get(GET_UNKNOWN).status_code == 404
        time.sleep(0.3)
        assert [c.get(GET_UNKNOWN).status_code for _ in range(2)] == [404, 404]
        assert [c.get(GET_UNKNOWN).status_code for _ in range(5)] == [429] * 5  # hammering: not counted
        time.sleep(max(0.0, t0 + 0.65 - time.monotonic()))
        # only the first request left the window: exactly one slot is free (a fixed window would free 3)
        r = c.get(GET_UNKNOWN)
        assert r.status_code == 404 and r.headers["x-ratelimit-remaining"] == "0"
        assert c.get(GET_UNKNOWN).status_code == 429
        time.sleep(0.65)
        r = c.get(GET_UNKNOWN)
        assert r.status_code == 404 and r.headers["x-ratelimit-remaining"] == "2"


def test_reset_clears_rate_windows(make_server):
    server = make_server(rate_limit=1)
    with httpx.Client(base_url=server.base_url, headers=AUTH) as c:
        assert c.get(GET_UNKNOWN).status_code == 404
        assert c.get(GET_UNKNOWN).status_code == 429
        assert c.post("/_sandbox/reset").status_code == 200
        assert c.get(GET_UNKNOWN).status_code == 404
