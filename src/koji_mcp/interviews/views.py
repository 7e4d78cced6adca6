"""Shaping Koji's interview (GET) into what a model can use: typed answers, paged transcript, text.

Koji does not document the GET body beyond the structured-answer fields, so everything here is
tolerant: known fields are lifted, values are typed by question type where that is safe, and
anything unrecognised is kept under `extra` rather than dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from koji_mcp.text import clean_koji_text, clean_structure, fence, one_line, plural

KNOWN = {
    "interview_id", "status", "mode", "locale", "respondent", "created_at", "updated_at", "completed_at",
    "completion_reason", "messages_count", "transcript", "analysis", "id",
}
MAX_TRANSCRIPT_CHARS = 20_000
MAX_INDEXED_CHARS = 200_000  # per interview and field, for search
YES = {"yes", "y", "true", "yeah", "yep", "sure"}
NO = {"no", "n", "false", "nope"}


SECRET_KEY = re.compile(r"(?i)token|secret|api_?key|authorization|password|credential")


SINGLE_LINE = ("interview_id", "status", "mode", "locale", "created_at", "updated_at", "completed_at",
               "completion_reason", "messages_count")


def without_secrets(value: Any) -> Any:
    """Koji's body is undocumented: never pass on anything that looks like a credential, at any depth."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not SECRET_KEY.search(str(k))}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def typed_value(question_type: str | None, value: Any) -> Any:
    """Coerce structuredValue to its documented type when the conversion is unambiguous."""
    if value is None:
        return None
    if question_type == "scale":
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return value
            return int(number) if number.is_integer() else number
        return value
    if question_type == "single_choice" and isinstance(value, list) and len(value) == 1:
        return value[0]
    if question_type in {"multiple_choice", "ranking"} and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if question_type == "yes_no" and isinstance(value, str):
        lowered = value.strip().lower()
        return True if lowered in YES else False if lowered in NO else value
    return value


def interview_view(
    raw: dict[str, Any], *, include_transcript: bool, offset: int, page: int, interview_id: str
) -> dict[str, Any]:
    """Koji's GET body as a model should see it.

    `interview_id` is the caller's validated id (Koji's echo of it is not trusted). Credential-like
    keys are dropped at every level, single-line fields are cleaned onto one line, and every string is
    stripped of invisible characters (the text rendering fences the rest).
    """
    raw = clean_structure(without_secrets(raw))
    analysis_raw = raw.get("analysis")
    analysis = dict(analysis_raw) if isinstance(analysis_raw, dict) else None
    answers_raw = (analysis or {}).pop("structured_answers", None) or raw.get("structured_answers") or []
    if analysis is None:
        analysis_status = "not_started" if raw.get("status") != "completed" else "pending"
    else:
        analysis_status = one_line(analysis.pop("status", None) or ("ready" if analysis else "pending"), 40)
    answers = []
    for answer in answers_raw if isinstance(answers_raw, list) else []:
        if isinstance(answer, dict):
            answers.append({**answer, "structuredValue": typed_value(answer.get("questionType"), answer.get("structuredValue"))})
    respondent = raw.get("respondent")
    if respondent is not None and not isinstance(respondent, dict):
        respondent = {"value": respondent}  # keep it, in a shape the text can show
    elif isinstance(respondent, dict):
        respondent = {k: one_line(v) if k in ("external_id", "display_name") and v is not None else v
                      for k, v in respondent.items()}
    view: dict[str, Any] = {
        "interview_id": interview_id,
        **{k: _single(raw.get(k)) for k in SINGLE_LINE if k != "interview_id"},
        "respondent": respondent,
        "analysis_status": analysis_status,
        "analysis": analysis or None,
        "structured_answers": answers,
    }
    if analysis_status == "pending":
        view["check_again_in_seconds"] = 10
    extra = {k: v for k, v in raw.items() if k not in KNOWN and k != "structured_answers"}
    view["extra"] = extra or None
    transcript = messages(raw)
    view["transcript_total"] = len(transcript)
    if include_transcript:
        chunk, used = [], 0
        for message in transcript[offset: offset + page]:
            size = len(json.dumps(message, ensure_ascii=False))
            if chunk and used + size > MAX_TRANSCRIPT_CHARS:
                break
            chunk.append(message)
            used += size
        view["transcript"] = chunk
        view["transcript_offset"] = offset
        end = offset + len(chunk)
        view["next_transcript_offset"] = end if end < len(transcript) else None
    return view


def messages(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """Koji's transcript as a list of message objects, whatever shape it came in."""
    transcript = raw.get("transcript") if isinstance(raw.get("transcript"), list) else []
    return [m if isinstance(m, dict) else {"role": "?", "content": str(m)} for m in transcript]


def theme_names(themes: Any, *, mentions: bool = False) -> list[str]:
    if not isinstance(themes, list):
        return []
    return [(f"{t.get('name')} ({t.get('mentions')})" if mentions else str(t.get("name")))
            if isinstance(t, dict) else str(t) for t in themes]


def searchable_text(raw: dict[str, Any]) -> dict[str, str]:
    """What `search` indexes of an interview: Koji's summary, theme names and every message, cleaned."""
    analysis = interview_view(raw, include_transcript=False, offset=0, page=0,
                              interview_id=str(raw.get("interview_id") or "")).get("analysis") or {}
    summary = analysis.get("summary")
    return {
        "summary": clean_koji_text(str(summary), MAX_INDEXED_CHARS) if summary else "",
        "themes": clean_koji_text(", ".join(theme_names(analysis.get("themes"))), MAX_INDEXED_CHARS),
        "transcript": clean_koji_text("\n".join(str(m.get("content") or "") for m in messages(raw)),
                                      MAX_INDEXED_CHARS),
    }


def _single(value: Any) -> Any:
    """A scalar field from Koji on one clean line (numbers and None stay as they are)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return one_line(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))


def render_interview(v: dict[str, Any]) -> str:
    """The text block: facts first, Koji-written content fenced; every unfenced value on one clean line."""
    head = f"Interview {v['interview_id']}: status {v.get('status', 'unknown')}"
    if v.get("completion_reason"):
        head += f" (reason {v['completion_reason']})"
    details = [f"{k} {v[k]}" for k in ("mode", "locale") if v.get(k)]
    if v.get("messages_count") is not None:
        details.append(plural(v["messages_count"], "message"))
    lines = [head + (", " + ", ".join(details) if details else "") + "."]
    person = v.get("respondent") or {}
    if person:
        who = " ".join(str(x) for x in (person.get("display_name"), person.get("external_id") and f"(external_id {person['external_id']})") if x)
        lines.append("Respondent: " + one_line(who or "anonymous")
                     + (f"; metadata {one_line(json.dumps(person['metadata'], ensure_ascii=False), 1_000)}"
                        if person.get("metadata") else ""))
    status = v["analysis_status"]
    if status == "not_started":
        lines.append("Analysis: not started; it runs after complete_interview.")
    elif status == "pending":
        lines.append(f"Analysis: pending. Koji is still analysing; check again in about {v.get('check_again_in_seconds', 10)} s.")
    else:
        lines.append(f"Analysis: {one_line(status, 40)}.")
        lines.append(fence("ANALYSIS", _analysis_text(v)))
    if v.get("transcript") is not None:
        start = v.get("transcript_offset", 0)
        shown = len(v["transcript"])
        lines.append(f"Transcript: messages {start + 1}-{start + shown} of {v.get('transcript_total', shown)}."
                     if shown != 1 else f"Transcript: message {start + 1} of {v.get('transcript_total', shown)}.")
        lines.append(fence("TRANSCRIPT", "\n".join(f"[{m.get('role', '?')}] {m.get('content', '')}" for m in v["transcript"])))
        if v.get("next_transcript_offset") is not None:
            lines.append(f"More: call get_interview with include_transcript=true, transcript_offset={v['next_transcript_offset']}.")
    elif v.get("transcript_total"):
        lines.append(f"Transcript: {plural(v['transcript_total'], 'message')} (pass include_transcript=true to read them).")
    return "\n".join(lines)


def _analysis_text(v: dict[str, Any]) -> str:
    analysis = v.get("analysis") or {}
    out = []
    if analysis.get("summary"):
        out.append(f"Summary: {analysis['summary']}")
    names = theme_names(analysis.get("themes"), mentions=True)
    if names:
        out.append("Themes: " + ", ".join(names))
    if analysis.get("quality_score") is not None:
        out.append(f"Quality score: {analysis['quality_score']}/5")
    if v.get("structured_answers"):
        out.append("Structured answers:")
        for a in v["structured_answers"]:
            confidence = f" (confidence {a['confidence']:.2f})" if isinstance(a.get("confidence"), int | float) else ""
            out.append(f"- {a.get('questionId')} [{a.get('questionType')}] {a.get('questionText')} -> "
                       f"{json.dumps(a.get('structuredValue'), ensure_ascii=False)}{confidence}")
    return "\n".join(out) or "(no analysis content)"
