"""Starting one interview exactly once: reserve in the ledger, send, then confirm or reconcile.

Single `start_interview` calls and batches share this path, so both get the same guarantees:
- the ledger row exists *before* the request is sent, so even a kill -9 mid-request leaves a
  trace ('starting', read as outcome unknown) and a rerun does not invite the person twice;
- a request that may have reached Koji is never retried; its row becomes 'unknown';
- once sent, a start is shielded from cancellation, so its result is always recorded; cancelled
  before sending (while pacing), it is released and nothing is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import anyio

from koji_mcp.interviews.database import Connection
from koji_mcp.interviews.ledger import LedgerEntry, StorageError, best_effort
from koji_mcp.koji.errors import KojiError, KojiProtocolError
from koji_mcp.koji.models import Respondent, StartRequest
from koji_mcp.interviews.services import Services

logger = logging.getLogger(__name__)

Outcome = Literal["started", "skipped", "failed", "unknown"]


@dataclass
class StartOutcome:
    outcome: Outcome
    interview_id: str | None = None
    initial_message: str | None = None
    error: KojiError | StorageError | None = None
    saved: bool = True
    existing: LedgerEntry | None = None  # for "skipped": the earlier entry for this external_id
    question: dict | None = None  # for "started": the first question as data, when Koji gave it


async def start_one(
    services: Services,
    owner: str,
    request: StartRequest,
    *,
    max_wait: float | None = None,
    skip_known: bool = False,
    on_reserved: Callable[[Connection, int], None] | None = None,
) -> StartOutcome:
    """Start one interview; with `skip_known`, skip an external_id the ledger already has."""
    person = request.respondent or Respondent()
    try:
        reserved = await services.ledger.run(
            services.ledger.reserve, owner=owner, external_id=person.external_id, display_name=person.display_name,
            metadata=person.metadata, mode=request.mode, locale=request.locale, unless_known=skip_known,
            on_reserved=on_reserved,
        )
    except StorageError as exc:  # before sending: nothing reached Koji
        return StartOutcome("failed", error=exc)
    if isinstance(reserved, LedgerEntry):
        return StartOutcome("skipped", interview_id=reserved.interview_id, existing=reserved)
    seq = reserved
    try:
        started = await services.koji.start_interview(request, max_wait=max_wait)
    except KojiError as exc:
        if exc.outcome == "unknown":
            return StartOutcome("unknown", interview_id=await _mark_unknown(services, seq, exc.message), error=exc)
        await services.ledger.run(best_effort, services.ledger.release, seq)
        return StartOutcome("failed", error=exc)
    except anyio.get_cancelled_exc_class():
        # Cancelled while pacing or waiting out a 429: nothing was sent (a send itself is shielded).
        best_effort(services.ledger.release, seq)
        raise
    except Exception as exc:  # anything unforeseen after sending: the outcome is unknown, say so
        logger.exception("unexpected error while starting an interview")
        error = KojiProtocolError(f"unexpected {type(exc).__name__} while talking to Koji")
        return StartOutcome("unknown", interview_id=await _mark_unknown(services, seq, error.message), error=error)
    saved = await services.ledger.run(best_effort, services.ledger.confirm, seq, interview_id=started.interview_id,
                                      session_token=started.session_token, initial_message=started.initial_message)
    return StartOutcome("started", started.interview_id, started.initial_message, saved=saved,
                        question=started.question)


async def _mark_unknown(services: Services, seq: int, note: str) -> str:
    try:
        return await services.ledger.run(services.ledger.mark_unknown, seq, note)
    except Exception:
        logger.exception("could not record an unknown start in the ledger")
        return f"pending row {seq} (status 'starting')"
