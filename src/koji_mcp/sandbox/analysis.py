"""Deterministic "analysis" of a completed interview: structured answers, themes, summary.

Koji runs an LLM pipeline; the sandbox uses simple rules so the same transcript always
yields the same analysis:

* scale – first number in the reply within [min, max] (digits first, then number words
  "zero".."ten"); int when integral;
* single_choice – the option mentioned first (case-insensitive substring; the longest
  option wins a tie at the same position);
* multiple_choice – every mentioned option, in the brief's option order;
* ranking – mentioned options ordered by their first appearance in the reply;
* yes_no – yes/yeah/yep/sure/definitely/absolutely/true vs no/nope/not really/never/
  false (and sí/oui/ja/sim, non/nein/não/nunca…), whole words; the earliest match wins
  ("not sure" counts as neither).

In an interview held in another locale, choices are recognised in that locale's option
labels (the question's ``translations``) as well, and reported as the brief's own options,
so answers from every locale add up; ``questionText`` is the question as it was asked.

Unparseable → ``structuredValue`` null, confidence 0.0. Parsed → 0.9, or 0.95 when the
reply is nothing but the answer, or 0.6 when it is ambiguous (e.g. both yes and no).
``qualitativeAnswer`` is the whole reply; ``followUpInsights`` holds one sentence quoting
the reply's first sentence when the reply says more than the bare answer.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .brief import localized_question
from .state import Interview

__all__ = ["analyse", "extract", "themes"]

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\d)")
_WORDS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten".split())}
_YES = re.compile(r"\b(yes|yeah|yep|yup|sure|definitely|absolutely|of course|true|sí|si|claro|oui|bien sûr|ja|"
                  r"natürlich|sim|com certeza)\b", re.I)
_NO = re.compile(r"\b(no|nope|not really|never|false|nunca|non|jamais|nein|nie|não|nao)\b", re.I)
_UNSURE = re.compile(r"\b(not sure|unsure|don't know|do not know)\b", re.I)
_FILLER = re.compile(r"[\s,;:.!?/>()&\-–—]|\band\b|\bthen\b|\bor\b|\b\d+\b|\bfinally\b|\bout of\b", re.I)
_STOPWORDS = frozenset("""about above after again also because been before being below between both
could does doing down during each even every from further have having here into just like more most
much must only other over really same should some such than that their them then there these they
this those through under until very want were what when where which while will with would your
yours first week thing things yeah pretty quite still think thanks thank maybe lot went well good
mostly said okay fine sure definitely used using since""".split())


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _exact(reply: str, parts: list[str]) -> bool:
    """True when the reply contains nothing but the extracted parts and connectors."""
    rest = reply.lower()
    for part in sorted(parts, key=len, reverse=True):
        rest = rest.replace(part.lower(), " ")
    return not _FILLER.sub("", rest).strip()


def _scale(reply: str, q: dict[str, Any]) -> tuple[Any, float]:
    lo, hi = q["min"], q["max"]
    for m in _NUMBER.finditer(reply):
        value = float(m.group())
        if lo <= value <= hi:
            return _num(value), 0.95 if _exact(reply, [m.group()]) else 0.9
    for m in re.finditer(r"\b(" + "|".join(_WORDS) + r")\b", reply, re.I):
        value = _WORDS[m.group(1).lower()]
        if lo <= value <= hi:
            return value, 0.7
    return None, 0.0


def _mentions(reply: str, options: list[str]) -> list[tuple[int, str]]:
    """(position of first mention, option) for each mentioned option."""
    low = reply.lower()
    found = [(low.find(o.lower()), o) for o in options]
    return sorted((pos, o) for pos, o in found if pos >= 0)


def _choice(reply: str, q: dict[str, Any]) -> tuple[Any, float]:
    found = _mentions(reply, q["options"])
    if not found:
        return None, 0.0
    first_pos = found[0][0]
    value = max((o for pos, o in found if pos == first_pos), key=len)
    distinct = [o for _, o in found if not any(o != p and o.lower() in p.lower() for _, p in found)]
    if len(distinct) > 1:
        return value, 0.6
    return value, 0.95 if _exact(reply, [value]) else 0.9


def _multi(reply: str, q: dict[str, Any], ordered: bool) -> tuple[Any, float]:
    found = _mentions(reply, q["options"])
    if not found:
        return None, 0.0
    mentioned = {o for _, o in found}
    value = [o for _, o in found] if ordered else [o for o in q["options"] if o in mentioned]
    return value, 0.95 if _exact(reply, value) else 0.9


def _yes_no(reply: str) -> tuple[Any, float]:
    text = _UNSURE.sub(" ", reply)
    yes, no = _YES.search(text), _NO.search(text)
    if not yes and not no:
        return None, 0.0
    if yes and no:
        return yes.start() < no.start(), 0.6
    pattern = _YES if yes else _NO
    words = [m.group() for m in pattern.finditer(text)]
    return bool(yes), 0.95 if _exact(text, words) else 0.9


def extract(question: dict[str, Any], reply: str | None) -> dict[str, Any]:
    """One structured answer in Koji's field names."""
    value: Any = None
    confidence = 0.0
    text = (reply or "").strip()
    if text:
        qtype = question["type"]
        if qtype == "scale":
            value, confidence = _scale(text, question)
        elif qtype == "single_choice":
            value, confidence = _choice(text, question)
        elif qtype in ("multiple_choice", "ranking"):
            value, confidence = _multi(text, question, ordered=qtype == "ranking")
        elif qtype == "yes_no":
            value, confidence = _yes_no(text)
    insights: list[str] = []
    if text and confidence < 0.95:
        first = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
        insights.append(f'Respondent added context: "{first[:117] + "..." if len(first) > 120 else first}"')
    return {"questionId": question["id"], "questionText": question["text"], "questionType": question["type"],
            "structuredValue": value, "qualitativeAnswer": text, "confidence": confidence,
            "followUpInsights": insights}


def extract_in(question: dict[str, Any], reply: str | None, locale: str) -> dict[str, Any]:
    """`extract` for an interview held in `locale`: options may be named by their translated labels."""
    asked = localized_question(question, locale)
    answer = extract(question, reply)
    labels = asked.get("options") or []
    if labels and labels != question.get("options"):
        local = extract(asked, reply)
        canonical = dict(zip(labels, question["options"], strict=True))
        value = local["structuredValue"]
        if value is not None and (answer["structuredValue"] is None or local["confidence"] > answer["confidence"]):
            answer["structuredValue"] = [canonical[v] for v in value] if isinstance(value, list) else canonical[value]
            answer["confidence"], answer["followUpInsights"] = local["confidence"], local["followUpInsights"]
    answer["questionText"] = asked["text"]
    return answer


def themes(texts: list[str], limit: int = 5) -> list[dict[str, Any]]:
    """Most frequent content words (≥ 4 letters, no stopwords), ties by first use."""
    words = [w for t in texts for w in re.findall(r"[^\W\d_]{4,}", t.lower()) if w not in _STOPWORDS]
    counts = Counter(words)
    first = {w: i for i, w in reversed(list(enumerate(words)))}
    ranked = sorted(counts, key=lambda w: (-counts[w], first[w]))
    return [{"name": w, "mentions": counts[w]} for w in ranked[:limit]]


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def analyse(interview: Interview, brief: dict[str, Any]) -> dict[str, Any]:
    """The "ready" analysis object for a completed interview."""
    questions = brief["questions"]
    asked = questions[: interview.question_index + 1]  # index == len(questions) once ended
    structured = [extract_in(q, interview.answers.get(q["id"]), interview.locale)
                  for q in asked if q["type"] != "open_ended"]
    replies = [m.content for m in interview.transcript if m.role == "respondent"]
    words = sum(len(r.split()) for r in replies)
    found = themes(replies)
    answered = sum(1 for q in questions if q["id"] in interview.answers)
    score = 1 + (answered * 2 >= len(questions)) + (answered == len(questions)) + (words >= 30) + (words >= 80)
    who = (interview.respondent.get("display_name") or "").strip() or "The respondent"
    summary = (f"{who} answered {answered} of {_n(len(questions), 'question')} in {_n(len(replies), 'message')} "
               f"({_n(words, 'word')}).")
    if found:
        summary += " Main themes: " + ", ".join(t["name"] for t in found[:3]) + "."
    parsed = [f"{a['questionId']}: {_format(a['structuredValue'])}" for a in structured
              if a["structuredValue"] is not None]
    if parsed:
        summary += " Structured answers: " + "; ".join(parsed) + "."
    end = interview.completed_at if interview.completed_at is not None else interview.updated_at
    return {"status": "ready", "summary": summary, "themes": found, "quality_score": max(1, min(5, score)),
            "structured_answers": structured,
            "statistics": {"respondent_messages": len(replies), "respondent_words": words,
                           "duration_seconds": round(end - interview.created_at)}}


def _n(count: int, noun: str) -> str:
    """'1 message', '3 messages' (the sandbox shares no code with koji-mcp, so not text.plural)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
