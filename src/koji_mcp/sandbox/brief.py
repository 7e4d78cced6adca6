"""Research briefs: the built-in default and validation of user-supplied ones.

A brief is plain JSON. Required: ``title`` and a non-empty ``questions`` list. Optional,
with defaults: ``published`` (true), ``locales`` (["en"]), ``default_locale`` (first
locale), ``default_mode`` ("text"), ``greeting`` / ``closing`` and per-locale
``greetings`` / ``closings``; each question may carry ``translations``:
``{"es": {"text": "…", "options": ["…", …]}}`` (options in the same order as the question's own).
Greetings may contain ``{name}``: it becomes the
respondent's first name, or disappears (with the space before it) when no display
name was given – "Hi {name}! Thanks…" → "Hi Jane! Thanks…" / "Hi! Thanks…".

Question types are Koji's: ``open_ended``, ``scale`` (``min`` < ``max``),
``single_choice``, ``multiple_choice``, ``ranking`` (``options``: ≥ 2 distinct strings),
``yes_no``. Validation returns a normalised deep copy and raises ``ValueError`` naming
the offending field, so a bad ``--brief`` file fails fast with a readable message.
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["CHOICE_TYPES", "QUESTION_TYPES", "default_brief", "load_brief", "localized_question", "pick_locale",
           "validate_brief"]

QUESTION_TYPES = ("open_ended", "scale", "single_choice", "multiple_choice", "ranking", "yes_no")
CHOICE_TYPES = ("single_choice", "multiple_choice", "ranking")
MODES = ("text", "voice")

DEFAULT_GREETING = "Hi {name}! Thanks for taking the time to chat with us today."
DEFAULT_CLOSING = "That's all my questions. Thank you for your time!"


def default_brief() -> dict[str, Any]:
    """A fresh copy of the built-in brief (package data ``default_brief.json``)."""
    return copy.deepcopy(_packaged_brief())


@lru_cache(maxsize=1)
def _packaged_brief() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("default_brief.json").read_text(encoding="utf-8")
    return validate_brief(json.loads(text))


def load_brief(path: str | Path) -> dict[str, Any]:
    """Read and validate a brief JSON file; ``ValueError`` explains what is wrong."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"Cannot read brief file {p}: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ValueError(f"Brief file {p} is not valid JSON: {exc.msg} ({where})") from exc
    try:
        return validate_brief(data)
    except ValueError as exc:
        raise ValueError(f"Invalid brief {p}: {exc}") from exc


def validate_brief(data: Any) -> dict[str, Any]:
    """Check a brief's structure and fill in defaults; returns a new dict."""
    if not isinstance(data, dict):
        raise ValueError("the brief must be a JSON object")
    brief = copy.deepcopy(data)
    title = brief.get("title")
    if not isinstance(title, str) or not title.strip():
        raise ValueError("'title' must be a non-empty string")
    published = brief.setdefault("published", True)
    if not isinstance(published, bool):
        raise ValueError("'published' must be true or false")

    locales = brief.setdefault("locales", ["en"])
    if not isinstance(locales, list) or not locales:
        raise ValueError("'locales' must be a non-empty list of strings")
    for i, loc in enumerate(locales):
        if not isinstance(loc, str) or not loc.strip():
            raise ValueError(f"'locales[{i}]' must be a non-empty string")
    if len({loc.lower() for loc in locales}) != len(locales):
        raise ValueError("'locales' contains duplicates")
    default_locale = brief.setdefault("default_locale", locales[0])
    if default_locale not in locales:
        raise ValueError(f"'default_locale' {default_locale!r} is not one of 'locales'")
    if brief.setdefault("default_mode", "text") not in MODES:
        raise ValueError("'default_mode' must be 'text' or 'voice'")

    for field, default in (("greeting", DEFAULT_GREETING), ("closing", DEFAULT_CLOSING)):
        if not isinstance(brief.setdefault(field, default), str) or not brief[field].strip():
            raise ValueError(f"'{field}' must be a non-empty string")
        _check_localised(brief, field + "s", locales)

    questions = brief.get("questions")
    if not isinstance(questions, list) or not questions:
        raise ValueError("'questions' must be a non-empty list")
    seen: set[str] = set()
    for i, q in enumerate(questions):
        _check_question(i, q, seen)
        _check_translations(i, q, locales)
    return brief


def pick_locale(table: dict[str, Any], locale: str) -> Any:
    """The entry of `table` for `locale`: exact, any case, then the bare language (pt-BR -> pt); else None."""
    if locale in table:
        return table[locale]
    lowered = {key.lower(): value for key, value in table.items()}
    return lowered.get(locale.lower(), lowered.get(locale.split("-")[0].lower()))


def localized_question(question: dict[str, Any], locale: str) -> dict[str, Any]:
    """The question as asked in `locale` (its translation's text and options), else as written."""
    translation = pick_locale(question.get("translations") or {}, locale)
    if not translation:
        return question
    return {**question, "text": translation.get("text", question["text"]),
            "options": translation.get("options", question.get("options", []))}


def _check_translations(i: int, q: dict[str, Any], locales: list[str]) -> None:
    where = f"questions[{i}].translations"
    translations = q.setdefault("translations", {})
    if not isinstance(translations, dict):
        raise ValueError(f"'{where}' must be an object mapping locale to {{text, options}}")
    for loc, tr in translations.items():
        if loc not in locales:
            raise ValueError(f"'{where}' has locale {loc!r}, which is not listed in 'locales'")
        if not isinstance(tr, dict) or not isinstance(tr.get("text"), str) or not tr["text"].strip():
            raise ValueError(f"'{where}.{loc}.text' must be a non-empty string")
        if "options" in tr:
            options = tr["options"]
            if not isinstance(options, list) or len(options) != len(q.get("options", [])) or not all(
                    isinstance(o, str) and o.strip() for o in options):
                raise ValueError(f"'{where}.{loc}.options' must list as many non-empty strings as 'options', "
                                 "in the same order")


def _check_localised(brief: dict[str, Any], field: str, locales: list[str]) -> None:
    texts = brief.setdefault(field, {})
    if not isinstance(texts, dict):
        raise ValueError(f"'{field}' must be an object mapping locale to text")
    for loc, text in texts.items():
        if loc not in locales:
            raise ValueError(f"'{field}' has locale {loc!r}, which is not listed in 'locales'")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"'{field}.{loc}' must be a non-empty string")


def _check_question(i: int, q: Any, seen: set[str]) -> None:
    where = f"questions[{i}]"
    if not isinstance(q, dict):
        raise ValueError(f"'{where}' must be an object")
    qid = q.get("id")
    if not isinstance(qid, str) or not qid.strip():
        raise ValueError(f"'{where}.id' must be a non-empty string")
    if qid in seen:
        raise ValueError(f"'{where}.id' duplicates question id {qid!r}")
    seen.add(qid)
    qtype = q.get("type")
    if qtype not in QUESTION_TYPES:
        raise ValueError(f"'{where}.type' must be one of {', '.join(QUESTION_TYPES)} (got {qtype!r})")
    if not isinstance(q.get("text"), str) or not q["text"].strip():
        raise ValueError(f"'{where}.text' must be a non-empty string")
    if qtype in CHOICE_TYPES:
        options = q.get("options")
        if not isinstance(options, list) or len(options) < 2:
            raise ValueError(f"'{where}.options' must list at least 2 options for a {qtype} question")
        if not all(isinstance(o, str) and o.strip() for o in options):
            raise ValueError(f"'{where}.options' must all be non-empty strings")
        if len({o.strip().lower() for o in options}) != len(options):
            raise ValueError(f"'{where}.options' contains duplicates")
    if qtype == "scale":
        for name in ("min", "max"):
            value = q.get(name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"'{where}.{name}' must be a number for a scale question")
        lo, hi = q["min"], q["max"]
        if not lo < hi:
            raise ValueError(f"'{where}': scale 'min' ({lo}) must be less than 'max' ({hi})")
