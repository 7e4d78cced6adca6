"""Settings validation, secret redaction in logs, and rate-limit header arithmetic."""

from __future__ import annotations

import logging
import time

import pytest

from koji_mcp.config import ConfigError, Settings, default_state_dir
from koji_mcp.logs import RedactingFormatter, redact
from koji_mcp.koji.ratelimit import RateLimitTracker


def test_env_is_read_and_flags_win() -> None:
    env = {"KOJI_API_KEY": "pk_live_abc", "KOJI_BASE_URL": "http://x.test/", "KOJI_TIMEOUT": "12",
           "KOJI_MCP_STATE_DIR": "/tmp/s", "KOJI_MCP_READ_ONLY": "true", "KOJI_MCP_TOOLS": "a, b"}
    s = Settings.load(env, timeout=3.0, base_url=None)
    assert s.api_key.get_secret_value() == "pk_live_abc"
    assert s.base_url == "http://x.test" and s.timeout == 3.0 and s.state_dir == "/tmp/s"
    assert s.read_only is True and s.tools == ("a", "b")


def test_log_level_and_auth_tokens_are_settings_too() -> None:
    """One declaration per setting: KOJI_MCP_LOG_LEVEL and KOJI_MCP_AUTH_TOKEN are read here, nowhere else."""
    env = {"KOJI_MCP_LOG_LEVEL": "debug", "KOJI_MCP_AUTH_TOKEN": "alice=" + "a" * 20 + ", bob=" + "b" * 20}
    s = Settings.load(env, auth_tokens=["carol=" + "c" * 20])
    assert s.log_level == "DEBUG"
    assert [t.get_secret_value()[:4] for t in s.auth_tokens] == ["alic", "bob=", "caro"]  # env and flags add up
    assert "aaaa" not in repr(s)
    assert Settings.load(env, log_level="ERROR").log_level == "ERROR"  # the flag wins
    assert Settings.load({}).log_level == "INFO" and Settings.load({}).auth_tokens == ()
    with pytest.raises(ConfigError) as info:
        Settings.load({"KOJI_MCP_LOG_LEVEL": "loud"})
    assert str(info.value) == "KOJI_MCP_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR (got 'loud')"


def test_no_module_reads_the_environment_but_config() -> None:
    import ast
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src" / "koji_mcp"
    readers = []
    for path in src.rglob("*.py"):
        if "sandbox" in path.relative_to(src).parts[:1] or path.name == "config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}:
                readers.append(f"{path.relative_to(src)}:{node.lineno}")
    # demo.py builds its child's environment (PYTHONPATH); host_config.py finds hosts' config folders.
    assert sorted({r.split(":")[0] for r in readers}) == ["cli/demo.py", "cli/host_config.py"], readers


def test_defaults() -> None:
    s = Settings.load({"HOME": "/home/u"})
    assert s.api_key is None and s.base_url == "https://koji.so" and s.timeout == 30 and s.connect_timeout == 5
    assert s.state_dir == "/home/u/.local/share/koji-mcp"
    assert default_state_dir({"XDG_DATA_HOME": "/xdg"}) == "/xdg/koji-mcp"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KOJI_BASE_URL": "koji.so"}, "KOJI_BASE_URL must start with http:// or https://"),
        ({"KOJI_TIMEOUT": "soon"}, "KOJI_TIMEOUT must be a number of seconds"),
        ({"KOJI_TIMEOUT": "-1"}, "KOJI_TIMEOUT must be greater than 0 (got -1.0)"),
        ({"KOJI_MCP_READ_ONLY": "maybe"}, "KOJI_MCP_READ_ONLY must be true or false"),
    ],
)
def test_bad_settings_fail_with_one_line(env, message) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(env)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_key_is_refused_unless_sandbox() -> None:
    with pytest.raises(ConfigError, match="KOJI_API_KEY is not set"):
        Settings.load({}).require_api_key()
    Settings.load({}, sandbox=True).require_api_key()


def test_key_shape_warns_but_does_not_reject() -> None:
    assert Settings.load({"KOJI_API_KEY": "sk_other"}).key_warning.startswith("KOJI_API_KEY does not start with")
    assert Settings.load({"KOJI_API_KEY": "pk_live_" + "a" * 32}).key_warning is None


def test_api_key_never_appears_in_repr() -> None:
    s = Settings(api_key="pk_live_supersecretsupersecret000000")
    assert "supersecret" not in repr(s) and "supersecret" not in str(s.model_dump())


def test_sealing_keys_are_settings_never_shown() -> None:
    """KOJI_MCP_REQUEST_STATE_KEYS: comma-separated, order kept (the first seals); no repr, dump or error shows one."""
    first, second = "sealing-canary-" + "Ab3Cd5Ef7Gh9Jk2Lm4Np6Qr8St0Uv1", "sealing-canary-" + "Wx2Yz4Ab6Cd8Ef0Gh1Jk3Lm5Np7Qr9"
    s = Settings.load({"KOJI_MCP_REQUEST_STATE_KEYS": f" {first} , {second} ", "KOJI_MCP_STATELESS": "yes"})
    assert [k.get_secret_value() for k in s.request_state_keys] == [first, second] and s.stateless is True
    assert "canary" not in repr(s) and "canary" not in str(s.model_dump())
    assert Settings.load({"KOJI_MCP_REQUEST_STATE_KEYS": " , "}).request_state_keys == ()
    for bad, why in ((first[:31], "key 1 of 1 is 31 characters; each key needs 32 to 512"),
                     (f"{first},{first[:20]}", "key 2 of 2 is 20 characters"),
                     (first + "é", "holds a space, a control or a non-ASCII character")):
        with pytest.raises(ConfigError) as info:
            Settings.load({"KOJI_MCP_REQUEST_STATE_KEYS": bad})
        assert why in str(info.value) and "canary" not in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("key pk_live_abcdefghijklmnopqrstuvwxyz012345 used", "key pk_live_abcd… used"),
        ("Authorization: Bearer pk_live_zzzzzzzzzz", "Authorization: Bearer pk_l…"),
        ("token st_live_0123456789abcdef", "token st_live_0123…"),
        ("{'X-Session-Token': 'st_live_secret'}", "{'X-Session-Token': 'st_l…'}"),
    ],
)
def test_redaction(raw, shown) -> None:
    assert redact(raw) == shown


def test_formatter_redacts_messages_and_tracebacks() -> None:
    formatter = RedactingFormatter("%(message)s")
    try:
        raise RuntimeError("failed with pk_live_canarycanarycanary0000000000")
    except RuntimeError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token %s", ("st_live_canary123",), sys.exc_info())
    out = formatter.format(record)
    assert "canary" not in out and "pk_live_cana…" in out and "st_live_cana…" in out


def test_retry_after_prefers_header_then_reset() -> None:
    tracker = RateLimitTracker(clock=lambda: 1000.0)
    assert tracker.retry_after({"retry-after": "7"}) == 7
    assert tracker.retry_after({"x-ratelimit-reset": "1012"}) == 12
    assert tracker.retry_after({"x-ratelimit-reset": "990"}) == 0
    assert tracker.retry_after({"x-ratelimit-reset": "99999"}) == 120  # capped
    assert tracker.retry_after({"retry-after": "junk"}) is None
    assert tracker.retry_after({}) is None
    tracker.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "47", "x-ratelimit-reset": "1060"})
    assert (tracker.snapshot.limit, tracker.snapshot.remaining, tracker.snapshot.reset_at) == (60, 47, 1060.0)


@pytest.mark.parametrize("limit", [60, 600])
def test_pacer_spreads_requests_and_respects_the_window(limit: int) -> None:
    """A tenth of the limit at once, then even spacing; no window of Koji's ever holds more than the limit.
    Up to 120/window a log of sends caps each window; beyond, the spacing alone does (window / (limit - burst))."""
    from koji_mcp.koji.ratelimit import LOGGED_LIMIT, Pacer, WaitTooLong

    now = [1000.0]
    tracker = RateLimitTracker(clock=lambda: now[0])
    pacer = Pacer(tracker, clock=lambda: now[0], window=60.0)
    tracker.observe({"x-ratelimit-limit": str(limit), "x-ratelimit-remaining": str(limit), "x-ratelimit-reset": "1060"})
    burst = limit // 10
    at = [pacer.reserve(max_wait=1e9) for _ in range(3 * limit)]  # the clock stands still: waits are send times
    spacing = 60.0 / limit if limit <= LOGGED_LIMIT else (60.0 + 0.1 + 0.3) / (limit - burst)  # + the log's slack
    assert at[:burst] == pytest.approx([0.0] * burst, abs=1e-9)  # a tenth of the limit may go at once
    assert at[burst] == pytest.approx(spacing) and at[burst + 1] == pytest.approx(2 * spacing)  # then evenly
    busiest = max(sum(1 for t in at if start <= t < start + 60.0) for start in at)
    assert limit - burst <= busiest <= limit
    with pytest.raises(WaitTooLong):
        pacer.reserve(max_wait=10)


def test_pacer_cost_per_send_does_not_grow_with_the_sends_in_the_window() -> None:
    """Against a generous limit a busy server keeps tens of thousands of sends in one window; each
    reserve must stay O(1) (rebuilding the list of sends cost ~1.5 ms a call at 20k, capping HTTP
    throughput). 300k sends, 120k of them always in the window: ~0.5 s now, minutes when O(n)."""
    from koji_mcp.koji.ratelimit import Pacer

    now = [1000.0]
    tracker = RateLimitTracker(clock=lambda: now[0])
    pacer = Pacer(tracker, clock=lambda: now[0], window=60.0)
    tracker.observe({"x-ratelimit-limit": "1000000000", "x-ratelimit-remaining": "999999999",
                     "x-ratelimit-reset": "1060"})
    began = time.perf_counter()
    waits = 0.0
    for _ in range(300_000):
        now[0] += 0.0005
        waits += pacer.reserve(max_wait=0)
    assert waits == 0.0
    assert time.perf_counter() - began < 10


def test_pacer_obeys_remaining_zero_and_429() -> None:
    from koji_mcp.koji.ratelimit import Pacer

    now = [1000.0]
    tracker = RateLimitTracker(clock=lambda: now[0])
    pacer = Pacer(tracker, clock=lambda: now[0])
    tracker.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "1030"})
    pacer.observe(200, {}, None)
    assert pacer.reserve(max_wait=100) == pytest.approx(30)
    now[0] = 2000.0
    tracker.observe({"x-ratelimit-limit": "60", "x-ratelimit-remaining": "5", "x-ratelimit-reset": "2010"})
    pacer.observe(429, {}, 7.0)
    assert pacer.reserve(max_wait=100) == pytest.approx(7)


def test_pacer_does_not_throttle_a_first_burst_before_the_limit_is_known() -> None:
    from koji_mcp.koji.ratelimit import Pacer

    now = [1000.0]
    tracker = RateLimitTracker(clock=lambda: now[0])
    pacer = Pacer(tracker, clock=lambda: now[0])
    assert [pacer.reserve(max_wait=0) for _ in range(60)] == [0.0] * 60  # the documented 60/min, at once
    tracker.observe({"x-ratelimit-limit": "100000", "x-ratelimit-remaining": "99940", "x-ratelimit-reset": "1060"})
    assert pacer.reserve(max_wait=0.01) < 0.01  # the real (higher) limit takes over at once
