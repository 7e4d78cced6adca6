"""Reading the interviewer's reply to a respondent message, whether JSON or an SSE stream.

Koji's older docs answer with JSON (`interviewer_response.content`, `interview_status`,
`messages_count`); the newer ones with Server-Sent Events whose format is undocumented. So the SSE
reader is tolerant: `data:` payloads may be JSON (with `content`/`delta`/`text`, or a final object
carrying `interview_status`) or plain text, and `[DONE]` ends the stream.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

TEXT_KEYS = ("content", "delta", "text", "message")


class MessageReply(BaseModel):
    """One interviewer turn, normalised from either wire format."""

    model_config = ConfigDict(defer_build=True)

    interviewer_message: str
    interview_status: str | None = None
    messages_count: int | None = None


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
    )


def parse_sse_reply(body: str) -> MessageReply:
    """Accumulate the interviewer text from an SSE body; pick up status from any JSON event."""
    parts: list[str] = []
    status: str | None = None
    count: int | None = None
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
                continue
            for key in TEXT_KEYS:
                if isinstance(payload.get(key), str):
                    parts.append(payload[key])
                    break
            status = _str(payload.get("interview_status")) or status
            count = _int(payload.get("messages_count")) if payload.get("messages_count") is not None else count
        elif isinstance(payload, str):
            parts.append(payload)
        elif payload is None:
            parts.append(data)
    if not parts:
        raise ReplyFormatError("the event stream carried no interviewer text")
    return MessageReply(
        interviewer_message="".join(parts), interview_status=status, messages_count=count,
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
