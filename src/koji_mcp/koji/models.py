"""Pydantic models of Koji's wire format (requests, responses, errors).

The tool input schemas reuse the request models, so what a model is allowed to send and what
Koji accepts are defined in one place.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

Mode = Literal["text", "voice"]
CompletionReason = Literal["natural", "respondent_left", "timeout", "manual"]

LOCALE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$"
INTERVIEW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
MAX_METADATA_KEYS = 50
MAX_METADATA_KEY_LENGTH = 100
MAX_METADATA_STRING = 2_000

_SCALAR_NAMES = "a string, number, boolean or null"


def _check_flat(value: dict[str, Any]) -> dict[str, Any]:
    """Koji's metadata (and complete's feedback) is flat: reject nesting with a message that says so."""
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"has {len(value)} keys; at most {MAX_METADATA_KEYS} are allowed")
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY_LENGTH:
            raise ValueError(f"keys must be 1-{MAX_METADATA_KEY_LENGTH} characters (got {key!r:.40})")
        if isinstance(item, dict | list | tuple):
            kind = "an object" if isinstance(item, dict) else "an array"
            raise ValueError(
                f"must be flat: value of {key!r} is {kind}; use {_SCALAR_NAMES} "
                f"(e.g. join a list into a comma-separated string)"
            )
        if item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"value of {key!r} must be {_SCALAR_NAMES}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"value of {key!r} must be a finite number (JSON has no NaN or Infinity)")
        if isinstance(item, str) and len(item) > MAX_METADATA_STRING:
            raise ValueError(f"value of {key!r} is longer than {MAX_METADATA_STRING} characters")
    return value


FlatMetadata = Annotated[
    dict[str, Any],
    AfterValidator(_check_flat),
    WithJsonSchema(
        {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            "maxProperties": MAX_METADATA_KEYS,
        }
    ),
]

Locale = Annotated[
    str,
    Field(
        pattern=LOCALE_PATTERN,
        description="e.g. 'en'; omit for the project's.",
    ),
]

InterviewId = Annotated[
    str,
    Field(
        pattern=INTERVIEW_ID_PATTERN,
        description="From start_interview.",
    ),
]


class Respondent(BaseModel):
    # Who is being interviewed. Koji stores it with the interview; it does not change the questions.
    # (A comment, not a docstring: the docstring would be repeated in every tool schema using it.)
    model_config = ConfigDict(extra="forbid")

    external_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Your id; prevents duplicates.",
    )
    display_name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Name to greet them with.",
    )
    metadata: FlatMetadata | None = Field(
        None,
        description="Flat, e.g. {'plan': 'pro'}.",
    )


class StartRequest(BaseModel):
    """Body of POST /api/v1/interviews/start. Only fields the caller gave are sent."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built on first use, not at startup

    respondent: Respondent | None = None
    mode: Mode | None = None
    locale: str | None = None

    def to_body(self) -> dict[str, Any]:
        body = self.model_dump(mode="json", exclude_none=True)
        if body.get("respondent") == {}:
            del body["respondent"]
        return body


def _question(raw: Any) -> dict[str, Any] | None:
    from koji_mcp.koji.replies import parse_question  # tolerant: an unusable question is None, never an error

    return parse_question(raw)


class StartResponse(BaseModel):
    """201 body of the start call. `session_token` never leaves the server."""

    model_config = ConfigDict(defer_build=True)

    interview_id: Annotated[str, Field(pattern=INTERVIEW_ID_PATTERN)]  # printed in results: no stray text
    session_token: Annotated[str, Field(min_length=1)]
    initial_message: str = ""
    question: Annotated[dict[str, Any] | None, BeforeValidator(_question)] = None  # the first question, as data




class ErrorBody(BaseModel):
    """Koji's error body: `{"error": "<code>", "message": "<text>"}`."""

    model_config = ConfigDict(defer_build=True)

    error: str
    message: str = ""


def is_valid_interview_id(value: str) -> bool:
    return re.fullmatch(INTERVIEW_ID_PATTERN, value) is not None
