"""MCP resources: `koji://interviews/{interview_id}`, an interview as the ledger and Koji know it."""

from __future__ import annotations

import json
import re
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from koji_mcp.koji.errors import KojiAPIError, KojiError, NotFound
from koji_mcp.interviews.ledger import LOCAL_OWNER
from koji_mcp.logs import redact
from koji_mcp.koji.models import is_valid_interview_id
from koji_mcp.interviews.jobs import BATCH_ID_PATTERN
from koji_mcp.interviews.services import Services
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.interviews.views import interview_view
from koji_mcp.text import clean_structure, one_line


def register_resources(server: MCPServer[Services]) -> None:
    @server.resource(
        "koji://interviews/{interview_id}",
        name="interview",
        title="Koji interview",
        description="An interview started through koji-mcp: the local ledger entry (never the session token) "
        "plus Koji's current view (status, analysis, structured answers).",
        mime_type="application/json",
    )
    async def interview_resource(interview_id: str, ctx: ServerContext) -> str:
        services = services_of(ctx)
        if not is_valid_interview_id(interview_id):
            raise ResourceError(f"not a valid interview_id: {interview_id!r}")
        owner = current_owner()
        entry = services.ledger.get(interview_id, owner)
        if entry is None and owner != LOCAL_OWNER:
            raise ResourceError(f"unknown interview {interview_id}")
        document: dict[str, Any] = {"interview_id": interview_id, "ledger": entry.public() if entry else None}
        try:
            raw = await services.koji.get_interview(interview_id,
                                                    session_token=entry.session_token if entry else None)
            document["koji"] = interview_view(raw, include_transcript=False, offset=0, page=0,
                                            interview_id=interview_id)
        except KojiAPIError as exc:
            if isinstance(exc, NotFound) and entry is None:
                raise ResourceError(f"unknown interview {interview_id}") from None
            document["koji_error"] = one_line(redact(f"HTTP {exc.status} {exc.code or ''}: {exc.message}".strip()), 1_000)
        except KojiError as exc:
            document["koji_error"] = one_line(redact(exc.message), 1_000)
        return json.dumps(clean_structure(document), ensure_ascii=False, indent=2)

    @server.resource(
        "koji://batches/{batch_id}",
        name="batch",
        title="Koji batch job",
        description="A background batch of start_interviews: status, counts and the first 100 outcomes "
        "(the same JSON as get_batch). Subscribe to hear as it advances.",
        mime_type="application/json",
    )
    async def batch_resource(batch_id: str, ctx: ServerContext) -> str:
        from koji_mcp.interviews.jobs import UnknownBatch, dumps

        services = services_of(ctx)
        try:
            if services.jobs is None or not re.fullmatch(BATCH_ID_PATTERN, batch_id):
                raise UnknownBatch(batch_id)
            return dumps(services.jobs.document(batch_id, current_owner()))
        except UnknownBatch:
            raise ResourceError(f"unknown batch_id {batch_id!r}") from None

