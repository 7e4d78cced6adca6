"""Reading the interviewer's reply to a respondent message, whether JSON or an SSE stream.

Koji's older docs answer with JSON (`interviewer_response.content`, `interview_status`,
`messages_count`); the newer ones with Server-Sent Events whose format is undocumented. So the SSE
reader is tolerant: `data:` payloads may be JSON (with `content`/`delta`/`text`, or a final object
carrying `interview_status`) or plain text, and `[DONE]` ends the stream.

The question a reply asks may come as data too (type, options, bounds), so a host can offer the same
choices as widgets. Koji's format for it is unknown; the sandbox's is ours (a `question` object, see
sandbox/handlers.py). `parse_question` reads it tolerantly: `question`/`next_question` at the top
level or inside `interviewer_response`, type aliases (`rating`, `boolean`, `multi_select`, ...),
options as strings or `{label|text|value}` objects; whatever it cannot make sense of is dropped,
never an error.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from koji_mcp.text import one_line

TEXT_KEYS = ("content", "delta", "text", "message")
QUESTION_KEYS = ("question", "next_question")
QUESTION_TYPES = ("open_ended", "scale", "single_choice", "multiple_choice", "ranking", "yes_no")
TYPE_ALIASES = {
    "open": "open_ended", "text": "open_ended", "open_text": "open_ended", "free_text": "open_ended",
    "rating": "scale", "likert": "scale", "nps": "scale", "number": "scale", "range": "scale",
    "single": "single_choice", "single_select": "single_choice", "choice": "single_choice", "radio": "single_choice",
    "multiple": "multiple_choice", "multi_choice": "multiple_choice", "multi_select": "multiple_choice",
    "checkbox": "multiple_choice", "checkboxes": "multiple_choice",
    "rank": "ranking", "order": "ranking",
    "yesno": "yes_no", "boolean": "yes_no", "bool": "yes_no", "binary": "yes_no",
}
MAX_OPTIONS = 30
MAX_LABEL = 200


class MessageReply(BaseModel):
    """One interviewer turn, normalised from either wire format."""

    model_config = ConfigDict(defer_build=True)

    interviewer_message: str
    interview_status: str | None = None
    messages_count: int | None = None
    question: dict[str, Any] | None = None  # see parse_question


class ReplyFormatError(ValueError):
    """The body could not be read as an interviewer reply."""


def parse_json_reply(payload: Any) -> MessageReply:
    if not isinstance(payload, dict):
        raise ReplyFormatError("the reply is not a JSON object")
    response = payload.get("interviewer_response")
    text = None
    if isinstance(response, dict):
        text = response.get("content")
    elif isinstance(response, str):
        text = response
    if text is None:
        text = next((payload[k] for k in TEXT_KEYS if isinstance(payload.get(k), str)), None)
    if not isinstance(text, str):
        raise ReplyFormatError("the reply has no interviewer_response.content")
    return MessageReply(
        interviewer_message=text,
        interview_status=_str(payload.get("interview_status") or payload.get("status")),
        messages_count=_int(payload.get("messages_count")),
        question=find_question(payload),
    )


def find_question(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The structured question in a reply object, wherever a tolerant reader can find it."""
    places = [payload]
    if isinstance(payload.get("interviewer_response"), dict):
        places.append(payload["interviewer_response"])
    for place in places:
        for key in QUESTION_KEYS:
            question = parse_question(place.get(key))
            if question is not None:
                return question
    return None


def parse_question(raw: Any) -> dict[str, Any] | None:
    """`{type, options?, min?, max?, labels?}` from whatever shape a reply gives; None if unusable."""
    if not isinstance(raw, dict):
        return None
    kind = next((raw[k] for k in ("type", "question_type", "questionType", "kind") if isinstance(raw.get(k), str)), None)
    if kind is None:
        return None
    kind = kind.strip().lower().replace("-", "_").replace(" ", "_")
    kind = TYPE_ALIASES.get(kind, kind)
    if kind not in QUESTION_TYPES:
        return None
    question: dict[str, Any] = {"type": kind}
    if kind in ("single_choice", "multiple_choice", "ranking"):
        options = _options(raw.get("options") or raw.get("choices"))
        if len(options) < 2:
            return None
        question["options"] = options
    elif kind == "scale":
        low = _number(raw, ("min", "scale_min", "scaleMin", "minimum", "low"))
        high = _number(raw, ("max", "scale_max", "scaleMax", "maximum", "high"))
        if low is None or high is None or low >= high:
            return None
        question["min"], question["max"] = low, high
        labels = _labels(raw.get("labels"))
        if labels:
            question["labels"] = labels
    return question


def _options(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        return []
    options: list[str] = []
    for item in raw[:MAX_OPTIONS]:
        if isinstance(item, dict):
            item = next((item[k] for k in ("label", "text", "value", "name") if isinstance(item.get(k), str | int | float)), None)
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            continue
        label = one_line(item, MAX_LABEL)
        if label and label not in options:
            options.append(label)
    return options


def _number(raw: dict[str, Any], keys: tuple[str, ...]) -> int | float | None:
    for key in keys:
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value and abs(value) < 1e9:
            return int(value) if float(value).is_integer() else value
    return None


def _labels(raw: Any) -> dict[str, str] | None:
    """Scale labels as {"<value>": "<label>"} (a list is read as [low label, high label])."""
    if isinstance(raw, list) and len(raw) >= 2 and all(isinstance(v, str) for v in raw):
        raw = {"min": raw[0], "max": raw[-1]}
    if not isinstance(raw, dict):
        return None
    labels = {one_line(k, 20): one_line(v, MAX_LABEL) for k, v in list(raw.items())[:MAX_OPTIONS]
              if isinstance(v, str) and v.strip()}
    return labels or None


def parse_sse_reply(body: str) -> MessageReply:
    """Accumulate the interviewer text from an SSE body; pick up status from any JSON event."""
    parts: list[str] = []
    status: str | None = None
    count: int | None = None
    question: dict[str, Any] | None = None
    for event, data in _events(body):
        if data.strip() == "[DONE]":
            break
        try:
            payload = json.loads(data)
        except ValueError:
            payload = None
        if event == "error" or (isinstance(payload, dict) and payload.get("type") == "error"):
            detail = payload.get("message") if isinstance(payload, dict) else data
            raise ReplyFormatError(f"Koji's stream reported an error: {detail}")
        if isinstance(payload, dict):
            if isinstance(payload.get("interviewer_response"), dict | str):
                whole = parse_json_reply(payload)
                parts.append(whole.interviewer_message)
                status = whole.interview_status or status
                count = whole.messages_count if whole.messages_count is not None else count
                question = whole.question or question
                continue
            for key in TEXT_KEYS:
                if isinstance(payload.get(key), str):
                    parts.append(payload[key])
                    break
            status = _str(payload.get("interview_status")) or status
            question = find_question(payload) or question
            count = _int(payload.get("messages_count")) if payload.get("messages_count") is not None else count
        elif isinstance(payload, str):
            parts.append(payload)
        elif payload is None:
            parts.append(data)
    if not parts:
        raise ReplyFormatError("the event stream carried no interviewer text")
    return MessageReply(
        interviewer_message="".join(parts), interview_status=status, messages_count=count, question=question,
    )


def _events(body: str) -> list[tuple[str, str]]:
    """Split an SSE body into (event name, joined data) pairs, per the EventSource rules."""
    events: list[tuple[str, str]] = []
    name, data = "message", []
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line == "":
            if data:
                events.append((name, "\n".join(data)))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    if data:
        events.append((name, "\n".join(data)))
    return events


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
