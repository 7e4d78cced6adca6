"""Property tests: no argument a client can send makes a tool crash, leak internals or stop the server.

Every tool's arguments are fuzzed with Hypothesis (wrong types, huge strings, unicode from odd
planes, bidi and zero-width characters, control characters, nested metadata, extra and missing
fields, out-of-range numbers, JSON-encoded strings the SDK pre-parses) and sent through the real
MCP client, in memory, to a server talking to the real sandbox over HTTP.

Property, for every call: `call_tool` returns (never raises), and the result is either a clean
success (structured content the client validated against the output schema) or a clean `isError`
result whose text is non-empty, bounded, and contains neither "Traceback" nor the SDK's generic
"Error executing tool" (which means an exception escaped the tool). After the fuzzing, a normal
start -> message -> list round trip still works on the same server.

One server and one client per test function (not per example): the client lives in an anyio
blocking portal (an event loop in a helper thread) and Hypothesis runs synchronously in the test.
Examples are derandomized, so the run is deterministic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from mcp import Client
from mcp.types import CallToolResult, TextContent

from koji_mcp.interviews.ledger import STATUSES, fts_match
from koji_mcp.koji.models import INTERVIEW_ID_PATTERN
from koji_mcp.server.app import build_server
from tests.conftest import make_settings

pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

MAX_EXAMPLES = 80
MAX_ERROR_TEXT = 10_000  # an error must not echo a huge input back into the model's context
CALL_TIMEOUT = 30

FUZZ = hsettings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # deliberate: one server per test function, shared by examples
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


# -- strategies ------------------------------------------------------------------------------------

WEIRD = [
    # bidi controls and RTL text
    "\u202e", "\u202d", "\u202a", "\u202b", "\u202c", "\u200e", "\u200f", "\u2066", "\u2067", "\u2068", "\u2069",
    "\u061c", "\u05e9\u05dc\u05d5\u05dd", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629", "abc\u202edcba",
    # zero-width and invisible
    "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e",
    # control characters (C0, DEL, C1, line/paragraph separators)
    "\x00", "\x01", "\x07", "\x08", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1b[31m", "\x7f", "\x85", "\x9b",
    "\u2028", "\u2029",
    # other planes: emoji, ZWJ sequences, tags, math, CJK ext B, private use, noncharacters
    "\U0001f600", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U000e0041\U000e007f", "\U0001d54f",
    "\U00020000", "\U000f0000", "\U0010fffd", "\U0010ffff", "\uffff", "\ufffe", "\ufffd", "\ufdd0",
    # combining, case and digit oddities
    "e\u0301", "\u0301\u0301\u0301", "\u0130", "\u01c5", "\u00df", "\u2126", "\u00b2", "\u0661\u0662\u0663",
    "\uff11\uff12", "\u2167",
    # injection-looking text and our own fence markers
    "KOJI INTERVIEWER>>>", "<<<KOJI", "'; DROP TABLE interviews;--", "%s%n%x", "{{7*7}}", "${jndi:ldap://x}",
    "../../etc/passwd", "%00", "\\u0000", "null", "NaN", "<script>", "pk_live_", "Bearer x",
]

weird_text = st.lists(st.one_of(st.sampled_from(WEIRD), st.text(max_size=4)), max_size=10).map("".join)
huge_text = st.builds(
    lambda unit, n: unit * n,
    st.sampled_from(["a", "\u00e9", "\U0001f600", "\u202e", "\u200b", "\x00", "9", " "]),
    st.sampled_from([100_000, 1_000_000, 129, 201, 2_001, 5_001]),
)
any_text = st.one_of(st.text(), weird_text, weird_text, huge_text)
key_text = st.one_of(st.text(max_size=20), weird_text)


def mostly(valid: st.SearchStrategy[Any], *bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Two draws in three from `valid`, so the fuzzing reaches Koji as well as the validators."""
    invalid = st.one_of(*bad)
    return st.one_of(valid, valid, valid, valid, invalid, invalid)


numbers = st.one_of(
    st.integers(),
    st.sampled_from([-1, 0, 1, 100, 101, 500, 501, 2**31, 2**53 + 1, 2**63, -(2**63) - 1, 2**64, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(key_text, inner, max_size=4)),
    max_leaves=12,
)
# The SDK parses JSON-looking strings for non-str parameters (hosts send objects as strings), with
# Python's json module, which accepts NaN and Infinity.
json_strings = st.one_of(
    json_values.map(json.dumps),
    st.sampled_from(['{"x": NaN}', '{"x": Infinity}', '{"x": -Infinity}', '[{"metadata": {"x": NaN}}]',
                     '{"metadata": {"x": NaN}}', '{', '[', '{"display_name": "J"}', "[" * 5000, "1" * 5000]),
)
wrong = st.one_of(json_values, json_strings)

flat_values = st.one_of(st.none(), st.booleans(), numbers, any_text)
finite_flat = st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=50), weird_text),
    max_size=5,
)
non_finite_flat = st.dictionaries(st.text(min_size=1, max_size=5), st.sampled_from([math.nan, math.inf, -math.inf]),
                                  min_size=1, max_size=2)
non_finite_json = st.sampled_from(['{"rating": NaN}', '{"rating": Infinity}', '{"a": 1, "b": -Infinity}'])
metadata = mostly(
    finite_flat,
    st.dictionaries(key_text, flat_values, max_size=6),
    st.dictionaries(st.text(min_size=1, max_size=8), flat_values, min_size=49, max_size=52),  # around the key cap
    st.dictionaries(st.sampled_from(["", "k" * 101, "k" * 100_000]), flat_values, min_size=1, max_size=1),
    st.dictionaries(key_text, json_values, min_size=1, max_size=4),  # nested objects and arrays
    non_finite_flat,
    non_finite_json,
    wrong,
)
# strings str.isdigit() accepts: ASCII, other scripts' digits, superscripts, and very long ones
digit_strings = st.one_of(
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6).filter(str.isdigit),
    st.integers(2**63 - 2, 10**40).map(str),
    st.sampled_from(["\u00b2", "9" * 19, "1" * 4_301, "0" * 5_000]),
)
names = st.one_of(st.text(min_size=1, max_size=200), weird_text.filter(lambda t: 0 < len(t) <= 200))


def extra_fields() -> st.SearchStrategy[dict[str, Any]]:
    keys = st.one_of(st.sampled_from(["project", "email", "api_key", "session_token", ""]), key_text,
                     st.just("k" * 20_000))
    return st.dictionaries(keys, json_values, min_size=1, max_size=2)


def respondent() -> st.SearchStrategy[Any]:
    person = st.fixed_dictionaries(
        {},
        optional={
            "external_id": mostly(names, any_text, huge_text, wrong),
            "display_name": mostly(names, any_text, huge_text, wrong),
            "metadata": metadata,
        },
    )
    with_extra = st.builds(lambda p, e: {**e, **p}, person, extra_fields())
    return mostly(person, with_extra, wrong, person.map(json.dumps))


modes = mostly(st.sampled_from(["text", "voice"]), st.sampled_from(["TEXT", "video", "", " text"]), wrong)
locales = mostly(
    st.sampled_from(["en", "es", "pt-BR", "zh-Hant-TW", "EN"]),
    st.sampled_from(["en_US", "english", "zz-ZZZZZZZZZ", "en\n", "\u0660\u0661", "e", "x-" * 100]),
    any_text,
    wrong,
)


def arguments(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[Any]:
    """Valid-shaped dicts (with corrupted values), or required fields dropped, extra fields added, or None."""
    full = st.fixed_dictionaries(required, optional=optional)
    base = st.fixed_dictionaries({}, optional={**required, **optional})  # required ones may be missing
    with_extra = st.builds(lambda a, e: {**e, **a}, full, extra_fields())
    return mostly(full, base, with_extra, st.none())


class _Fresh:
    """Stands for an interview started right before the call (so send/complete reach Koji)."""

    def __repr__(self) -> str:
        return "FRESH"


class _Known:
    """Stands for one of the interviews started at the beginning of the test (reused across examples)."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __repr__(self) -> str:
        return f"KNOWN[{self.index}]"


FRESH = _Fresh()
interview_ids = mostly(
    st.one_of(st.just(FRESH), st.builds(_Known, st.integers(0, 2))),
    st.from_regex(INTERVIEW_ID_PATTERN, fullmatch=True),
    st.sampled_from(["00000000-0000-0000-0000-000000000000", "a" * 128, "a" * 129, "a..", "a:b", "-a", "a/b",
                     "a b", "a\n", "..", "", "\u0661"]),
    any_text,
    wrong,
)
valid_reasons = st.sampled_from(["natural", "respondent_left", "timeout", "manual"])
reasons = mostly(valid_reasons, st.sampled_from(["NATURAL", "", "done"]), wrong)
contents = mostly(st.one_of(st.text(min_size=1), weird_text), huge_text, st.sampled_from(["", " ", "\n\t", "\u200b"]),
                  wrong)
cursors = mostly(st.integers(0, 10**6).map(str), digit_strings, st.sampled_from(["", " 1", "1.0", "0x10", "-1"]),
                 any_text, huge_text, wrong)

live_ids = st.one_of(st.just(FRESH), st.builds(_Known, st.integers(0, 2)))
valid_person = st.fixed_dictionaries(
    {}, optional={"external_id": names, "display_name": names, "metadata": finite_flat}
)
valid_modes = st.sampled_from(["text", "voice"])
valid_locales = st.sampled_from(["en", "es", "pt-BR", "zh-Hant-TW", "EN"])

# Each tool: well-formed arguments with hostile contents (these reach Koji), or fuzzed ones.
START_INTERVIEW = st.one_of(
    st.fixed_dictionaries({}, optional={"respondent": valid_person, "mode": valid_modes, "locale": valid_locales}),
    arguments({}, {"respondent": respondent(), "mode": modes, "locale": locales}),
)
START_INTERVIEWS = st.one_of(
    st.fixed_dictionaries({"respondents": st.lists(valid_person, min_size=1, max_size=3)},
                          optional={"mode": valid_modes, "locale": valid_locales, "dry_run": st.booleans(),
                                    "force": st.booleans()}),
    arguments(
        {"respondents": mostly(st.lists(respondent(), min_size=1, max_size=3), st.lists(respondent(), max_size=6),
                               wrong)},
        {"mode": modes, "locale": locales, "dry_run": mostly(st.booleans(), wrong),
         "force": mostly(st.booleans(), wrong)},
    ),
    st.sampled_from([{"respondents": [{}] * 500, "dry_run": True}, {"respondents": [{}] * 501, "dry_run": True},
                     {"respondents": []}]),
)
SEND_MESSAGE = st.one_of(
    st.fixed_dictionaries({"interview_id": live_ids, "content": st.one_of(names, st.text(min_size=1), weird_text)}),
    arguments({"interview_id": interview_ids, "content": contents}, {}),
)
COMPLETE = st.one_of(
    st.fixed_dictionaries({"interview_id": live_ids},
                          optional={"reason": valid_reasons, "feedback": st.one_of(finite_flat, non_finite_json)}),
    arguments({"interview_id": interview_ids}, {"reason": reasons, "feedback": metadata}),
)
GET_INTERVIEW = st.one_of(
    st.fixed_dictionaries({"interview_id": live_ids},
                          optional={"include_transcript": st.booleans(), "transcript_offset": st.integers(0, 10**30)}),
    arguments(
        {"interview_id": interview_ids},
        {"include_transcript": mostly(st.booleans(), wrong),
         "transcript_offset": mostly(st.integers(0, 20), numbers, wrong)},
    ),
)
LIST_INTERVIEWS = st.one_of(
    st.fixed_dictionaries({}, optional={"status": st.sampled_from(STATUSES), "external_id": names,
                                        "limit": st.integers(1, 100), "cursor": cursors}),
    arguments(
        {},
        {
            "status": mostly(st.sampled_from(STATUSES), st.sampled_from(["ACTIVE", "deleted", ""]), any_text, huge_text,
                             wrong),
            "external_id": mostly(names, any_text, huge_text, wrong),
            "limit": mostly(st.integers(1, 100), numbers, wrong),
            "cursor": cursors,
        },
    ),
)
# FTS5 syntax, our own quoting and words the known interviews hold ("Fuzz"), in any order and spacing
fts_pieces = st.sampled_from(['"', '""', "*", "NEAR(", "NEAR", "OR", "AND", "NOT", "-", "^", ":", "(", ")", "{", "}",
                              "+", ",", "Fuzz", "fuzz*", "x", "external_id:", "\x00", "\u202e"])
fts_queries = st.one_of(st.lists(fts_pieces, max_size=8).map(" ".join), st.lists(fts_pieces, max_size=8).map("".join))
SEARCH = st.one_of(
    st.fixed_dictionaries({"query": st.one_of(fts_queries, names, weird_text)}),
    arguments({"query": mostly(fts_queries, any_text, huge_text, wrong)}, {}),
)
FETCH = st.one_of(st.fixed_dictionaries({"id": live_ids}), arguments({"id": interview_ids}, {}))


# -- the harness -----------------------------------------------------------------------------------

async def _call(client: Client, name: str, args: Any) -> CallToolResult:
    with anyio.fail_after(CALL_TIMEOUT):
        return await client.call_tool(name, args)


def check_clean(result: Any, name: str, args: Any) -> CallToolResult:
    where = f"{name}({_short(args)})"
    assert isinstance(result, CallToolResult), where
    assert result.content, f"{where}: empty content"
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    assert texts and all(t.strip() for t in texts), f"{where}: a result without text"
    text = "\n".join(texts)
    assert "Traceback" not in text, f"{where}: {text[:500]}"
    assert "Error executing tool" not in text, f"{where}: an exception escaped the tool: {text[:500]}"
    if result.is_error:
        assert len(text) <= MAX_ERROR_TEXT, f"{where}: error text of {len(text):,} chars: {text[:300]}"
    else:
        assert isinstance(result.structured_content, dict), f"{where}: success without structuredContent"
    return result


def _short(args: Any) -> str:
    shown = repr(args)
    return shown if len(shown) < 300 else shown[:300] + f"… ({len(shown):,} chars)"


@dataclass
class FuzzSession:
    portal: BlockingPortal
    client: Client
    known: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: {"ok": 0, "error": 0, "skipped": 0})

    def raw_call(self, name: str, args: Any) -> CallToolResult:
        return self.portal.call(_call, self.client, name, args)

    def start(self) -> str:
        result = check_clean(self.raw_call("start_interview", {"respondent": {"display_name": "Fuzz"}}),
                             "start_interview", {})
        assert not result.is_error, result.content[0].text
        return result.structured_content["interview_id"]

    def resolve(self, args: Any) -> Any:
        for key in ("interview_id", "id"):  # fetch names it `id`
            if isinstance(args, dict) and isinstance(args.get(key), _Fresh | _Known):
                marker = args[key]
                iid = self.start() if isinstance(marker, _Fresh) else self.known[marker.index]
                return {**args, key: iid}
        return args

    def check(self, name: str, args: Any) -> CallToolResult:
        args = self.resolve(args)
        result = check_clean(self.raw_call(name, args), name, args)
        self.outcomes["error" if result.is_error else "ok"] += 1
        return result

    def both_paths_seen(self) -> None:
        """The fuzzing reached the tool's success path and its error paths (it did not only bounce off validation)."""
        assert self.outcomes["ok"] > 0 and self.outcomes["error"] > 0, self.outcomes

    def still_serving(self) -> None:
        iid = self.start()
        reply = check_clean(self.raw_call("send_interview_message", {"interview_id": iid, "content": "Fine, thanks."}),
                            "send_interview_message", {})
        assert not reply.is_error, reply.content[0].text
        listed = check_clean(self.raw_call("list_interviews", {"limit": 1}), "list_interviews", {})
        assert not listed.is_error and listed.structured_content["interviews"][0]["interview_id"] == iid


@pytest.fixture(params=["legacy", "auto"])
def fuzz(request: pytest.FixtureRequest, sandbox, tmp_path) -> Iterator[FuzzSession]:
    # analysis_poll_seconds=0: get_interview must not wait for a pending analysis while fuzzing
    settings = make_settings(sandbox.base_url, state_dir=str(tmp_path / "state"), analysis_poll_seconds=0)
    with start_blocking_portal(backend="asyncio") as portal:
        with portal.wrap_async_context_manager(Client(build_server(settings), mode=request.param)) as client:
            session = FuzzSession(portal, client)
            session.known = [session.start() for _ in range(3)]
            yield session


# -- one property test per tool --------------------------------------------------------------------

def test_start_interview_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=START_INTERVIEW)
    def run(args: Any) -> None:
        fuzz.check("start_interview", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_start_interviews_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=START_INTERVIEWS)
    def run(args: Any) -> None:
        fuzz.check("start_interviews", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_send_interview_message_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=SEND_MESSAGE)
    def run(args: Any) -> None:
        fuzz.check("send_interview_message", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_complete_interview_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=COMPLETE)
    def run(args: Any) -> None:
        fuzz.check("complete_interview", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_get_interview_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=GET_INTERVIEW)
    def run(args: Any) -> None:
        fuzz.check("get_interview", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_list_interviews_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=LIST_INTERVIEWS)
    def run(args: Any) -> None:
        fuzz.check("list_interviews", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_search_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=SEARCH)
    def run(args: Any) -> None:
        result = fuzz.check("search", args)
        query = args.get("query") if isinstance(args, dict) and set(args) == {"query"} else None
        if isinstance(query, str) and len(query) <= 500 and fts_match(query) is not None:
            assert not result.is_error, (query, result.content[0].text)  # words are never a syntax error
            assert len(result.structured_content["results"]) <= 20

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_fetch_survives_any_arguments(fuzz: FuzzSession) -> None:
    @FUZZ
    @given(args=FETCH)
    def run(args: Any) -> None:
        fuzz.check("fetch", args)

    run()
    fuzz.both_paths_seen()
    fuzz.still_serving()


def test_unknown_tool_names_are_clean_errors(fuzz: FuzzSession) -> None:
    @hsettings(FUZZ, max_examples=20)
    @given(name=st.one_of(weird_text, st.sampled_from(["", "start_interview ", "START_INTERVIEW", "../start"])),
           args=st.one_of(st.none(), st.dictionaries(any_text, json_values, max_size=2)))
    def run(name: str, args: Any) -> None:
        result = fuzz.raw_call(name, args)
        assert result.is_error and result.content and result.content[0].text.strip()

    run()
    fuzz.still_serving()


# -- regressions: the bugs the fuzzing found -------------------------------------------------------

@pytest.mark.parametrize("cursor", ["\u00b2", "9" * 20, "1" * 5_000])
def test_list_interviews_rejects_unusable_cursors_cleanly(fuzz: FuzzSession, cursor: str) -> None:
    result = check_clean(fuzz.raw_call("list_interviews", {"cursor": cursor}), "list_interviews", {"cursor": cursor})
    assert result.is_error and "cursor is not valid" in result.content[0].text


def test_list_interviews_bad_status_error_is_bounded(fuzz: FuzzSession) -> None:
    args = {"status": "x" * 1_000_000}
    result = check_clean(fuzz.raw_call("list_interviews", args), "list_interviews", args)
    assert result.is_error


@pytest.mark.parametrize("args", [{"k" * 100_000: 1}, {"respondent": {"k" * 100_000: 1}}])
def test_unknown_field_error_is_bounded(fuzz: FuzzSession, args: dict) -> None:
    result = check_clean(fuzz.raw_call("start_interview", args), "start_interview", args)
    assert result.is_error and "unknown field" in result.content[0].text


# Found by this fuzzing and fixed (6d70e07): NaN/Infinity (JSON-string arguments the SDK parses with
# json.loads, or NaN literals on stdio) used to reach httpx's allow_nan=False encoder.
@pytest.mark.parametrize(
    ("name", "args", "field"),
    [
        ("complete_interview", {"interview_id": FRESH, "feedback": '{"rating": NaN}'}, "feedback"),
        ("complete_interview", {"interview_id": FRESH, "feedback": '{"rating": -Infinity}'}, "feedback"),
        ("start_interview", {"respondent": '{"metadata": {"x": Infinity}}'}, "respondent.metadata"),
        ("start_interviews", {"respondents": '[{"metadata": {"x": NaN}}]'}, "respondents.0.metadata"),
    ],
)
def test_non_finite_numbers_are_rejected_cleanly(fuzz: FuzzSession, name: str, args: dict, field: str) -> None:
    result = fuzz.check(name, args)
    assert result.is_error and f"- {field}: " in result.content[0].text and "finite" in result.content[0].text
