"""Starting one interview exactly once: reserve in the ledger, send, then confirm or reconcile.

Single `start_interview` calls and batches share this path, so both get the same guarantees:
- the ledger row exists *before* the request is sent, so even a kill -9 mid-request leaves a
  trace ('starting', read as outcome unknown) and a rerun does not invite the person twice;
- a request that may have reached Koji is never retried; its row becomes 'unknown';
- once sent, a start is shielded from cancellation, so its result is always recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import anyio

from koji_mcp.errors import KojiError
from koji_mcp.models import Respondent, StartRequest
from koji_mcp.services import Services

logger = logging.getLogger(__name__)

Outcome = Literal["started", "failed", "unknown"]


@dataclass
class StartOutcome:
    outcome: Outcome
    interview_id: str | None = None
    initial_message: str | None = None
    error: KojiError | None = None
    saved: bool = True


async def start_one(
    services: Services, owner: str, request: StartRequest, *, max_wait: float | None = None
) -> StartOutcome:
    person = request.respondent or Respondent()
    seq = services.ledger.reserve(
        owner=owner, external_id=person.external_id, display_name=person.display_name,
        metadata=person.metadata, mode=request.mode, locale=request.locale,
    )
    with anyio.CancelScope(shield=True):
        try:
            started = await services.koji.start_interview(request, max_wait=max_wait)
        except KojiError as exc:
            if exc.outcome == "unknown":
                placeholder = services.ledger.mark_unknown(seq, exc.message)
                return StartOutcome("unknown", interview_id=placeholder, error=exc)
            services.ledger.release(seq)
            return StartOutcome("failed", error=exc)
        try:
            services.ledger.confirm(seq, interview_id=started.interview_id, session_token=started.session_token,
                                    initial_message=started.initial_message)
            saved = True
        except Exception:  # the interview exists at Koji: report it even if the ledger is broken
            logger.exception("could not save interview %s to the ledger", started.interview_id)
            saved = False
    return StartOutcome("started", started.interview_id, started.initial_message, saved=saved)
