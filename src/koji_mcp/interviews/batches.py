"""Batch invitations: start an interview for each respondent, exactly once, paced by the rate limit.

Used by the `start_interviews` tool and the `koji-mcp batch` command. Planning happens before any
request: respondents whose external_id is already in the ledger (or repeated in this batch) are
skipped unless `force`. Workers then start the rest with bounded concurrency through the shared
pacer; every outcome is reported as it happens, so a progress bar or MCP progress can follow.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import anyio

from koji_mcp.koji.errors import (
    BriefNotPublished,
    Forbidden,
    KojiError,
    PaymentRequired,
    ProjectNotFound,
    Unauthorized,
)
from koji_mcp.koji.models import Mode, Respondent, StartRequest
from koji_mcp.interviews.database import Connection
from koji_mcp.interviews.ledger import UNSETTLED, LedgerEntry, ReservationRefused, StorageError, holder_is_dead
from koji_mcp.interviews.services import Services
from koji_mcp.interviews.start_once import start_one
from koji_mcp.text import one_line

logger = logging.getLogger(__name__)

BatchOutcomeKind = Literal["started", "skipped", "failed", "unknown", "would_start"]
DEFAULT_CONCURRENCY = 4
BATCH_MAX_WAIT = 300.0  # a batch may wait for the rate-limit window; single calls may not


@dataclass
class BatchOutcome:
    row: int
    outcome: BatchOutcomeKind
    external_id: str | None = None
    display_name: str | None = None
    interview_id: str | None = None
    error_code: str | None = None
    message: str | None = None

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def line(self) -> str:
        """One human line, shared by the tool's text and the CLI's plain output."""
        who = one_line(self.external_id or self.display_name or "(anonymous)", 120)
        parts = [f"row {self.row} {who}: {self.outcome}", self.interview_id or ""]
        if self.message:
            code = f"{self.error_code}: " if self.error_code else ""
            parts.append(f"({one_line(code + self.message, 300)})")
        return " ".join(p for p in parts if p)


def missing_external_ids_warning(count: int) -> str:
    """Said by the tool and the CLI alike when respondents come without an external_id."""
    return (f"{count} respondent(s) have no external_id: they cannot be deduplicated, so running this batch "
            "again would invite (and charge for) them again")


OnOutcome = Callable[[BatchOutcome], Awaitable[None] | None]
OnReserved = Callable[[Connection, int], None]


def plan(
    services: Services, owner: str, respondents: Sequence[Respondent], *, force: bool,
    rows: Sequence[int] | None = None,
) -> list[BatchOutcome | None]:
    """Decide, before sending anything, who is skipped (None = to be started)."""
    seen: dict[str, int] = {}
    decisions: list[BatchOutcome | None] = []
    for row, person in zip(rows if rows is not None else range(1, len(respondents) + 1), respondents, strict=True):
        key = person.external_id
        if key is None:
            decisions.append(None)
            continue
        if key in seen:
            decisions.append(_skip(row, person, None, f"duplicate of row {seen[key]} in this batch"))
            continue
        seen[key] = row
        earlier = [] if force else services.ledger.find_by_external_id(key, owner)
        # a start in flight elsewhere (another batch, another replica) is left to the worker: it waits for it
        decisions.append(known(row, person, earlier[0]) if earlier and not in_flight(earlier[0]) else None)
    return decisions


IN_FLIGHT_SECONDS = BATCH_MAX_WAIT + 60.0  # the longest a live start stays 'starting': pacing, then Koji's deadline
SETTLE_POLL = 0.2


def in_flight(entry: LedgerEntry) -> bool:
    """A start some live process is making right now, not the trace of one that died mid-start: 'starting',
    its process alive (when on this host) and young enough (pacing, then Koji's deadline)."""
    if entry.status != "starting" or holder_is_dead(entry.reserved_by):
        return False
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(entry.created_at.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return False
    return age < IN_FLIGHT_SECONDS


async def settled(services: Services, entry: LedgerEntry, stop: anyio.Event | None = None) -> LedgerEntry | None:
    """Wait while another process's start of this person is in flight; its outcome, or None if it was
    released (Koji refused it or it was never sent: the person is not invited, so ours to start)."""
    while in_flight(entry) and not (stop is not None and stop.is_set()):
        await anyio.sleep(SETTLE_POLL)
        current = services.ledger.get_row(entry.seq)
        if current is None:
            return None
        entry = current
    return entry


def known(row: int, person: Respondent, earlier: LedgerEntry) -> BatchOutcome:
    """The outcome for someone the ledger already has: skipped, or still unknown until settled.

    An earlier start whose outcome is unknown is not started again, but it is not "done" either: it
    counts as unknown (the batch exits 1) until someone checks Koji and settles it.
    """
    if earlier.status in UNSETTLED:
        why = ("an earlier start's outcome is unknown" if earlier.status == "unknown" else
               "an earlier start is in flight, or was when koji-mcp stopped; its outcome is unknown")
        return BatchOutcome(row, "unknown", person.external_id, person.display_name, earlier.interview_id, None,
                            f"{why}: check Koji, then settle it with `koji-mcp ledger resolve "
                            f"{earlier.interview_id} --started INTERVIEW_ID` or `--not-started`")
    return _skip(row, person, earlier.interview_id, f"already invited (status {earlier.status})")


def _skip(row: int, person: Respondent, interview_id: str | None, why: str) -> BatchOutcome:
    return BatchOutcome(row, "skipped", person.external_id, person.display_name, interview_id, None, why)


async def run_batch(
    services: Services,
    owner: str,
    respondents: Sequence[Respondent],
    *,
    mode: Mode | None = None,
    locale: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    on_outcome: OnOutcome | None = None,
    stop: anyio.Event | None = None,
    rows: Sequence[int] | None = None,
    on_reserved: Callable[[int], OnReserved] | None = None,
    failures: list[KojiError | StorageError] | None = None,
) -> list[BatchOutcome]:
    """Start every planned respondent; outcomes come back in row order.

    Setting `stop` lets in-flight starts finish (and be recorded) but starts nothing new; the
    rows not reached are simply absent from the result, and a rerun picks them up. Raises
    LedgerRowsLost, before anything is planned or sent, when the ledger lost rows.
    Jobs (jobs.py) pass their own row numbers (`rows`), a hook that links each reservation to
    their row in the same transaction (`on_reserved(row)`), and collect the error that stopped
    the batch (`failures`).
    """
    services.ledger.check_intact()  # an emptied ledger would make everyone look new (LedgerRowsLost)
    decisions = plan(services, owner, respondents, force=force, rows=rows)
    outcomes: dict[int, BatchOutcome] = {}

    async def report(outcome: BatchOutcome) -> None:
        outcomes[outcome.row] = outcome
        if on_outcome is not None:
            maybe = on_outcome(outcome)
            if maybe is not None:
                await maybe

    pending = []
    numbers = rows if rows is not None else range(1, len(respondents) + 1)
    for row, person, decision in zip(numbers, respondents, decisions, strict=True):
        if decision is not None:
            await report(decision)
        elif dry_run:
            await report(BatchOutcome(row, "would_start", person.external_id, person.display_name))
        else:
            pending.append((row, person))
    if dry_run or not pending:
        return [outcomes[r] for r in sorted(outcomes)]

    queue = iter(pending)
    failed_hard: list[KojiError | StorageError] = failures if failures is not None else []
    refused: list[int] = []

    async def worker() -> None:
        for row, person in queue:
            if (stop is not None and stop.is_set()) or failed_hard or refused:
                return
            request = StartRequest(respondent=person, mode=mode, locale=locale)
            for _attempt in range(3):  # again only when another process's start of this person was released
                try:
                    result = await start_one(services, owner, request, max_wait=BATCH_MAX_WAIT, skip_known=not force,
                                             on_reserved=on_reserved(row) if on_reserved is not None else None)
                except ReservationRefused:  # a job that is no longer ours to run: stop, nothing was sent
                    refused.append(row)
                    return
                existing = result.existing
                if existing is None or not in_flight(existing):
                    break
                result.existing = await settled(services, existing, stop)  # being started elsewhere: wait for it
                if result.existing is not None:
                    break
            if result.existing is not None:  # invited meanwhile (another batch, another replica)
                await report(known(row, person, result.existing))
                continue
            error = result.error
            if error is not None and _stops_batch(error):
                failed_hard.append(error)
            await report(BatchOutcome(
                row, result.outcome, person.external_id, person.display_name, result.interview_id,
                getattr(error, "code", None) or (type(error).__name__ if error else None),
                error.message if error else None,
            ))

    async with anyio.create_task_group() as group:
        for _ in range(max(1, min(concurrency, len(pending)))):
            group.start_soon(worker)
    return [outcomes[r] for r in sorted(outcomes)]


STOPS_BATCH = (Unauthorized, PaymentRequired, Forbidden, ProjectNotFound, BriefNotPublished, StorageError)


def _stops_batch(error: KojiError | StorageError) -> bool:
    """Errors that will fail every remaining row too: stop instead of hammering Koji."""
    return isinstance(error, STOPS_BATCH)


OUTCOME_KINDS: tuple[BatchOutcomeKind, ...] = ("started", "skipped", "failed", "unknown", "would_start")


def summarize(outcomes: Sequence[BatchOutcome], total: int) -> dict[str, int]:
    counts = dict.fromkeys(OUTCOME_KINDS, 0)
    for outcome in outcomes:
        counts[outcome.outcome] += 1
    counts["not_reached"] = total - len(outcomes)
    return counts


def describe_counts(counts: dict[str, int]) -> str:
    """'3 started, 1 skipped' — the summary shared by the tool and the CLI."""
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v)
