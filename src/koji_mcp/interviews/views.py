"""Shaping Koji's interview (GET) into what a model can use: typed answers, paged transcript, text.

Koji does not document the GET body beyond the structured-answer fields, so everything here is
tolerant: known fields are lifted, values are typed by question type where that is safe, and
anything unrecognised is kept under `extra` rather than dropped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from koji_mcp.text import clean_koji_text, fence, plural

KNOWN = {
    "interview_id", "status", "mode", "locale", "respondent", "created_at", "updated_at", "completed_at",
    "completion_reason", "messages_count", "transcript", "analysis", "id",
}
MAX_TRANSCRIPT_CHARS = 20_000
YES = {"yes", "y", "true", "yeah", "yep", "sure"}
NO = {"no", "n", "false", "nope"}


SECRET_KEY = re.compile(r"(?i)token|secret|api_?key|authorization|password|credential")


def without_secrets(value: Any) -> Any:
    """Koji's body is undocumented: never pass on anything that looks like a credential."""
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
    raw: dict[str, Any], *, include_transcript: bool, offset: int, page: int, interview_id: str = ""
) -> dict[str, Any]:
    analysis_raw = raw.get("analysis")
    analysis = without_secrets(dict(analysis_raw)) if isinstance(analysis_raw, dict) else None
    answers_raw = (analysis or {}).pop("structured_answers", None) or raw.get("structured_answers") or []
    if analysis is None:
        analysis_status = "not_started" if raw.get("status") != "completed" else "pending"
    else:
        analysis_status = str(analysis.pop("status", None) or ("ready" if analysis else "pending"))
    answers = []
    for answer in answers_raw if isinstance(answers_raw, list) else []:
        if isinstance(answer, dict):
            answers.append({**answer, "structuredValue": typed_value(answer.get("questionType"), answer.get("structuredValue"))})
    respondent = raw.get("respondent")
    if respondent is not None and not isinstance(respondent, dict):
        raw = {**raw, "respondent": {"value": respondent}}  # keep it, in a shape the text can show
    view: dict[str, Any] = {
        "interview_id": str(raw.get("interview_id") or raw.get("id") or interview_id),
        **{k: without_secrets(raw.get(k)) for k in ("status", "mode", "locale", "respondent", "created_at",
                                                     "updated_at", "completed_at", "completion_reason",
                                                     "messages_count")},
        "analysis_status": analysis_status,
        "analysis": analysis or None,
        "structured_answers": answers,
    }
    if analysis_status == "pending":
        view["check_again_in_seconds"] = 10
    extra = without_secrets({k: v for k, v in raw.items() if k not in KNOWN and k != "structured_answers"})
    view["extra"] = extra or None
    transcript = raw.get("transcript") if isinstance(raw.get("transcript"), list) else []
    transcript = [m if isinstance(m, dict) else {"role": "?", "content": str(m)} for m in transcript]
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


def render_interview(v: dict[str, Any]) -> str:
    """The text block: facts first, Koji-written content fenced."""
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
        lines.append("Respondent: " + clean_koji_text(who or "anonymous", 300)
                     + (f"; metadata {json.dumps(person['metadata'], ensure_ascii=False)}" if person.get("metadata") else ""))
    status = v["analysis_status"]
    if status == "not_started":
        lines.append("Analysis: not started; it runs after complete_interview.")
    elif status == "pending":
        lines.append(f"Analysis: pending. Koji is still analysing; check again in about {v.get('check_again_in_seconds', 10)} s.")
    else:
        lines.append(f"Analysis: {status}.")
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
    themes = analysis.get("themes")
    if isinstance(themes, list) and themes:
        names = [f"{t.get('name')} ({t.get('mentions')})" if isinstance(t, dict) else str(t) for t in themes]
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
