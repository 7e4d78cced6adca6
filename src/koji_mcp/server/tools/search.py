"""search and fetch: the two tools ChatGPT's deep research and company knowledge call, in their shapes.

Both answer with one text content holding JSON (what those hosts parse) and the same object as
structuredContent. `search` reads only the caller's ledger (the full-text index that get_interview
and fetch keep up to date); `fetch` reads one of the caller's interviews from Koji.
"""

import json
from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from koji_mcp.interviews.ledger import LOCAL_OWNER, SEARCH_LIMIT, LedgerEntry, fts_match
from koji_mcp.interviews.views import interview_view, render_interview
from koji_mcp.koji.errors import InterviewNotFound
from koji_mcp.koji.models import INTERVIEW_ID_PATTERN
from koji_mcp.server.tools.read import remember
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.server.tools.results import fail, ok
from koji_mcp.text import clean_koji_text

URL = "koji://interviews/{id}"  # the interview's resource: stable, and readable with resources/read
FETCH_TRANSCRIPT_PAGE = 500  # messages; the text is capped by views.MAX_TRANSCRIPT_CHARS anyway
MAX_QUERY_CHARS = 500


class SearchResult(BaseModel):
    id: str
    title: str
    url: str


class SearchResults(BaseModel):
    results: list[SearchResult]


class Document(BaseModel):
    id: str
    title: str
    text: str  # Koji's text fenced as third-party
    url: str
    metadata: dict[str, Any] | None = None


async def search(
    ctx: ServerContext,
    query: Annotated[str, Field(max_length=MAX_QUERY_CHARS,
                                description="A name, id, topic or words said.")],
) -> Annotated[CallToolResult, SearchResults]:
    """Search interviews by name, id, themes or words said (20 best); read one with fetch."""
    services = services_of(ctx)
    if fts_match(query) is None:
        return fail("query holds no words to search for: pass a name, an external_id or words about a topic, "
                    "e.g. \"pricing\".")
    entries = services.ledger.search(current_owner(), query, limit=SEARCH_LIMIT)
    results = SearchResults(results=[SearchResult(id=e.interview_id, title=_title(e), url=URL.format(id=e.interview_id))
                                     for e in entries])
    return _json_result(results)


async def fetch(
    ctx: ServerContext,
    id: Annotated[str, Field(pattern=INTERVIEW_ID_PATTERN, description="From search.")],
) -> Annotated[CallToolResult, Document]:
    """One interview found by search, as a document: analysis and transcript."""
    services = services_of(ctx)
    owner = current_owner()
    entry = services.ledger.get(id, owner)
    if entry is None and owner != LOCAL_OWNER:  # another client's interview reads as unknown
        raise InterviewNotFound(404, "not_found", "The specified interview does not exist.")
    raw = await services.koji.get_interview(id)
    view = interview_view(raw, include_transcript=True, offset=0, page=FETCH_TRANSCRIPT_PAGE, interview_id=id)
    remember(services, owner, id, raw, view)
    respondent = view.get("respondent") or {}
    if entry is not None:
        respondent = {"external_id": entry.external_id, "display_name": entry.display_name}
    metadata = {
        **{k: v for k, v in respondent.items() if k in ("external_id", "display_name") and v is not None},
        **{k: view[k] for k in ("status", "analysis_status", "mode", "locale", "created_at", "completed_at",
                                "completion_reason", "messages_count", "transcript_total")
           if view.get(k) is not None},
    }
    title = _title_of(respondent.get("display_name"), respondent.get("external_id"), view.get("status"),
                      view.get("created_at") or (entry.created_at if entry else None))
    return _json_result(Document(id=id, title=title, text=render_interview(view), url=URL.format(id=id),
                                 metadata=metadata))


def _title(entry: LedgerEntry) -> str:
    return _title_of(entry.display_name, entry.external_id, entry.status, entry.created_at)


def _title_of(display_name: Any, external_id: Any, status: Any, created_at: Any) -> str:
    """'Jane (u-123), completed, started 2026-11-30': who, how far, when."""
    who = (f"{display_name} ({external_id})" if display_name and external_id
           else str(display_name or external_id or "Anonymous respondent"))
    parts = [clean_koji_text(who, 200)]
    if status:
        parts.append(clean_koji_text(str(status), 40))
    if created_at:
        parts.append(f"started {str(created_at)[:10]}")
    return "Interview: " + ", ".join(parts)


def _json_result(model: BaseModel) -> CallToolResult:
    """One text content holding the JSON, and the same object as structuredContent (the hosts' shape)."""
    data = model.model_dump(mode="json", exclude_none=True)
    return ok(json.dumps(data, ensure_ascii=False), data)
