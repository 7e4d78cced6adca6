"""A deterministic interviewer: asks the brief's questions in order, then closes.

No language model and no randomness, so tests and demos can predict every reply:

* the initial message is the (localised, personalised) greeting plus question 1;
* each respondent message answers the current question; the reply is a short
  acknowledgement (chosen by question position) plus the next question;
* after the last question the reply is the brief's closing and the interview ends.

Structured questions carry their answer format in the text ("Please answer with a
number from 1 to 10.", "Options: A, B or C.") because the sandbox has no widgets.
Only the greeting and closing are localised; questions are asked as written.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

__all__ = ["ACKNOWLEDGEMENTS", "closing_message", "greeting", "initial_message", "render_question", "respond"]

ACKNOWLEDGEMENTS = ("Thanks for sharing that.", "Got it, thank you.", "That's really helpful.", "Thanks, noted.")
_NAME = re.compile(r"\s*\{name\}")


def greeting(brief: dict[str, Any], locale: str, display_name: str | None) -> str:
    """The brief's greeting for ``locale`` with ``{name}`` → first name (or removed)."""
    template = str(brief.get("greetings", {}).get(locale) or brief["greeting"])
    first = display_name.split()[0] if display_name and display_name.strip() else None
    if first is None:
        return _NAME.sub("", template)
    return template.replace("{name}", first)


def closing_message(brief: dict[str, Any], locale: str) -> str:
    return str(brief.get("closings", {}).get(locale) or brief["closing"])


def _join_options(options: list[str], last_word: str) -> str:
    if len(options) == 2:
        return f"{options[0]} {last_word} {options[1]}"
    return ", ".join(options[:-1]) + f" {last_word} " + options[-1]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def render_question(question: dict[str, Any]) -> str:
    """The question text plus, for structured types, how to answer it."""
    text, qtype = str(question["text"]).strip(), question["type"]
    options = question.get("options", [])
    if qtype == "scale":
        hint = f"Please answer with a number from {_number(question['min'])} to {_number(question['max'])}."
    elif qtype == "single_choice":
        hint = f"Options: {_join_options(options, 'or')}."
    elif qtype == "multiple_choice":
        hint = f"Choose any that apply: {_join_options(options, 'and')}."
    elif qtype == "ranking":
        hint = f"Options to rank, most important first: {_join_options(options, 'and')}."
    elif qtype == "yes_no":
        hint = "(Yes or no.)"
    else:
        return text
    return f"{text} {hint}"


def initial_message(brief: dict[str, Any], locale: str, display_name: str | None) -> str:
    return f"{greeting(brief, locale, display_name)} {render_question(brief['questions'][0])}"


def respond(brief: dict[str, Any], answered_index: int, locale: str) -> tuple[str, bool]:
    """Reply after question ``answered_index`` was answered; returns (text, ended)."""
    questions = brief["questions"]
    nxt = answered_index + 1
    if nxt >= len(questions):
        return closing_message(brief, locale), True
    ack = ACKNOWLEDGEMENTS[answered_index % len(ACKNOWLEDGEMENTS)]
    return f"{ack} {render_question(questions[nxt])}", False


def split_chunks(text: str) -> list[str]:
    """Split ``text`` into 2–4 consecutive pieces (at spaces when possible) for SSE deltas.

    Deterministic: the count depends only on the length; ``"".join(chunks) == text``.
    """
    if len(text) < 2:
        return [text]
    n = min(4, max(2, len(text) // 60 + 2), len(text))
    cuts: list[int] = []
    for i in range(1, n):
        target = len(text) * i // n
        space = text.rfind(" ", (cuts[-1] if cuts else 0) + 1, target + 1)
        cut = space + 1 if space > 0 else target
        if cut > (cuts[-1] if cuts else 0) and cut < len(text):
            cuts.append(cut)
    bounds = [0, *cuts, len(text)]
    chunks = [text[a:b] for a, b in pairwise(bounds)]
    if len(chunks) < 2:  # no usable space: cut in the middle
        mid = len(text) // 2
        chunks = [text[:mid], text[mid:]]
    return chunks
