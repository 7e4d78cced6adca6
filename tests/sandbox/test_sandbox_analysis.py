"""Structured-answer extraction rules (unit level) plus a few properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from koji_mcp.sandbox import default_brief
from koji_mcp.sandbox.analysis import extract, themes
from koji_mcp.sandbox.interviewer import split_chunks

Q = {q["type"]: q for q in default_brief()["questions"]}


@pytest.mark.parametrize(
    ("reply", "value", "confidence"),
    [("8", 8, 0.95), ("I'd say 8 out of 10", 8, 0.9), ("maybe 7.5", 7.5, 0.9), ("10/10!", 10, 0.95),
     ("0, no wait, 11... fine, 3", 3, 0.9), ("about seven", 7, 0.7), ("hard to say", None, 0.0),
     ("It took 20 minutes", None, 0.0)],
)
def test_scale(reply, value, confidence):
    answer = extract(Q["scale"], reply)
    assert answer["structuredValue"] == value and type(answer["structuredValue"]) is type(value)
    assert answer["confidence"] == confidence


@pytest.mark.parametrize(
    ("reply", "value", "confidence"),
    [("Documentation", "Documentation", 0.95), ("customer support, they were great", "Customer support", 0.9),
     ("video tutorials, and a bit of the community forum", "Video tutorials", 0.6), ("none", None, 0.0)],
)
def test_single_choice(reply, value, confidence):
    answer = extract(Q["single_choice"], reply)
    assert (answer["structuredValue"], answer["confidence"]) == (value, confidence)


def test_multiple_choice_uses_brief_order_and_ranking_uses_reply_order():
    multi = extract(Q["multiple_choice"], "mobile app, alerts and reports")
    assert multi["structuredValue"] == ["Reports", "Alerts", "Mobile app"]
    assert multi["confidence"] == 0.95 and multi["followUpInsights"] == []
    rank = extract(Q["ranking"], "1. lower price 2. more integrations 3. faster performance")
    assert rank["structuredValue"] == ["Lower price", "More integrations", "Faster performance"]
    assert extract(Q["ranking"], "no idea")["structuredValue"] is None


@pytest.mark.parametrize(
    ("reply", "value", "confidence"),
    [("Yes", True, 0.95), ("yeah, probably", True, 0.9), ("Nope.", False, 0.95), ("not really", False, 0.95),
     ("Never!", False, 0.95), ("I'm not sure", None, 0.0), ("Yes and no", True, 0.6), ("yesterday", None, 0.0),
     ("Definitely, it's TRUE", True, 0.9), ("Sure, absolutely", True, 0.95), ("nobody asked", None, 0.0)],
)
def test_yes_no(reply, value, confidence):
    answer = extract(Q["yes_no"], reply)
    assert answer["structuredValue"] is value
    assert answer["confidence"] == confidence


def test_follow_up_insight_and_unanswered():
    answer = extract(Q["yes_no"], "Yes. The setup wizard alone is worth it. Also support is quick.")
    assert answer["followUpInsights"] == ['Respondent added context: "Yes."']
    assert answer["qualitativeAnswer"] == "Yes. The setup wizard alone is worth it. Also support is quick."
    empty = extract(Q["scale"], None)
    assert (empty["structuredValue"], empty["confidence"], empty["qualitativeAnswer"],
            empty["followUpInsights"]) == (None, 0.0, "", [])


def test_themes_rank_by_count_then_first_use():
    assert themes(["Billing was confusing. Billing twice!", "The dashboard is slow; the dashboard..."]) == [
        {"name": "billing", "mentions": 2}, {"name": "dashboard", "mentions": 2},
        {"name": "confusing", "mentions": 1}, {"name": "twice", "mentions": 1}, {"name": "slow", "mentions": 1}]


@settings(max_examples=150, deadline=None, database=None)
@given(st.text(max_size=300))
def test_extraction_is_total_typed_and_deterministic(reply):
    expected_types = {"scale": (int, float), "single_choice": (str,), "multiple_choice": (list,),
                      "ranking": (list,), "yes_no": (bool,)}
    for qtype, q in Q.items():
        if qtype == "open_ended":
            continue
        answer = extract(q, reply)
        assert answer == extract(q, reply)
        value = answer["structuredValue"]
        if value is None:
            assert answer["confidence"] == 0.0
        else:
            assert isinstance(value, expected_types[qtype]) and 0 < answer["confidence"] <= 1
            if qtype == "scale":
                assert q["min"] <= value <= q["max"] and not isinstance(value, bool)
            if isinstance(value, list):
                assert value and set(value) <= set(q["options"]) and len(set(value)) == len(value)


@settings(database=None)
@given(st.text(min_size=2, max_size=400))
def test_split_chunks_reassemble(text):
    chunks = split_chunks(text)
    assert "".join(chunks) == text
    assert 2 <= len(chunks) <= 4 and all(chunks)
