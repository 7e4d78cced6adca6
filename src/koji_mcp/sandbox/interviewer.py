"""A deterministic interviewer: asks the brief's questions in order, then closes.

No language model and no randomness, so tests and demos can predict every reply:

* the initial message is the (localised, personalised) greeting plus question 1;
* each respondent message answers the current question; the reply is a short
  acknowledgement (chosen by question position) plus the next question;
* after the last question the reply is the brief's closing and the interview ends.

Structured questions carry their answer format in the text ("Please answer with a
number from 1 to 10.", "Options: A, B or C.") because the sandbox has no widgets.

The interviewer speaks the interview's locale throughout: the brief's greeting, questions
(``translations``) and closing for that locale, and its own words (acknowledgements, answer
hints) in :data:`LANGUAGES`. For other locales its own words fall back to English
(:func:`speaks` tells), and questions without a translation are asked as written.
"""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Any

from .brief import localized_question, pick_locale

__all__ = ["ACKNOWLEDGEMENTS", "LANGUAGES", "closing_message", "greeting", "initial_message", "question_data",
           "render_question", "respond", "speaks"]

# The interviewer's own words per language. Hints: {lo}/{hi} for scales, {options} for choices.
PHRASES: dict[str, dict[str, Any]] = {
    "en": {"acks": ("Thanks for sharing that.", "Got it, thank you.", "That's really helpful.", "Thanks, noted."),
           "scale": "Please answer with a number from {lo} to {hi}.", "single_choice": "Options: {options}.",
           "multiple_choice": "Choose any that apply: {options}.",
           "ranking": "Options to rank, most important first: {options}.", "yes_no": "(Yes or no.)",
           "or": "or", "and": "and"},
    "es": {"acks": ("Gracias por contarlo.", "Entendido, gracias.", "Eso es muy útil.", "Gracias, lo anoto."),
           "scale": "Responde con un número del {lo} al {hi}.", "single_choice": "Opciones: {options}.",
           "multiple_choice": "Elige todas las que correspondan: {options}.",
           "ranking": "Opciones para ordenar, la más importante primero: {options}.", "yes_no": "(Sí o no.)",
           "or": "o", "and": "y"},
    "fr": {"acks": ("Merci de nous en faire part.", "C'est noté, merci.", "C'est très utile.", "Merci, c'est noté."),
           "scale": "Répondez par un nombre de {lo} à {hi}.", "single_choice": "Options : {options}.",
           "multiple_choice": "Choisissez toutes celles qui s'appliquent : {options}.",
           "ranking": "Options à classer, la plus importante d'abord : {options}.", "yes_no": "(Oui ou non.)",
           "or": "ou", "and": "et"},
    "de": {"acks": ("Danke, dass du das teilst.", "Verstanden, danke.", "Das ist sehr hilfreich.", "Danke, notiert."),
           "scale": "Bitte antworte mit einer Zahl von {lo} bis {hi}.", "single_choice": "Optionen: {options}.",
           "multiple_choice": "Wähle alle zutreffenden aus: {options}.",
           "ranking": "Optionen zum Ordnen, die wichtigste zuerst: {options}.", "yes_no": "(Ja oder nein.)",
           "or": "oder", "and": "und"},
    "pt-BR": {"acks": ("Obrigado por compartilhar.", "Entendi, obrigado.", "Isso ajuda muito.", "Obrigado, anotado."),
              "scale": "Responda com um número de {lo} a {hi}.", "single_choice": "Opções: {options}.",
              "multiple_choice": "Escolha todas as que se aplicam: {options}.",
              "ranking": "Opções para ordenar, a mais importante primeiro: {options}.", "yes_no": "(Sim ou não.)",
              "or": "ou", "and": "e"},
}
LANGUAGES = tuple(PHRASES)
ACKNOWLEDGEMENTS = PHRASES["en"]["acks"]


def speaks(locale: str) -> bool:
    """Whether the interviewer has its own words in `locale` (else it uses English ones)."""
    return pick_locale(PHRASES, locale) is not None


def _phrases(locale: str) -> dict[str, Any]:
    return pick_locale(PHRASES, locale) or PHRASES["en"]
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


def render_question(question: dict[str, Any], locale: str = "en") -> str:
    """The question text in `locale` plus, for structured types, how to answer it (in `locale` too)."""
    question = localized_question(question, locale)
    words = _phrases(locale)
    text, qtype = str(question["text"]).strip(), question["type"]
    options = question.get("options", [])
    if qtype == "scale":
        hint = words["scale"].format(lo=_number(question["min"]), hi=_number(question["max"]))
    elif qtype == "single_choice":
        hint = words["single_choice"].format(options=_join_options(options, words["or"]))
    elif qtype in ("multiple_choice", "ranking"):
        hint = words[qtype].format(options=_join_options(options, words["and"]))
    elif qtype == "yes_no":
        hint = words["yes_no"]
    else:
        return text
    return f"{text} {hint}"


def question_data(question: dict[str, Any], locale: str = "en") -> dict[str, Any]:
    """The question as data (the replies' ``question`` field): id, type and, per type, options or bounds."""
    asked = localized_question(question, locale)
    data: dict[str, Any] = {"id": question["id"], "type": question["type"]}
    if question["type"] in ("single_choice", "multiple_choice", "ranking"):
        data["options"] = list(asked.get("options", []))
    elif question["type"] == "scale":
        data["min"], data["max"] = question["min"], question["max"]
        if question.get("labels"):
            data["labels"] = question["labels"]
    return data


def initial_message(brief: dict[str, Any], locale: str, display_name: str | None) -> str:
    return f"{greeting(brief, locale, display_name)} {render_question(brief['questions'][0], locale)}"


def respond(brief: dict[str, Any], answered_index: int, locale: str) -> tuple[str, bool]:
    """Reply after question ``answered_index`` was answered; returns (text, ended)."""
    questions = brief["questions"]
    nxt = answered_index + 1
    if nxt >= len(questions):
        return closing_message(brief, locale), True
    acks = _phrases(locale)["acks"]
    return f"{acks[answered_index % len(acks)]} {render_question(questions[nxt], locale)}", False


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
