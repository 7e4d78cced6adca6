"""start_interviews, get_batch, cancel_batch: batch invitations from an assistant.

A batch that fits in about 15 s runs inside the call, with progress notifications. A longer one
(or `background: true`) becomes a job (interviews/jobs.py): planned and recorded now, run in the
background, followed with get_batch or the `koji://batches/{batch_id}` resource.
"""


from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from koji_mcp.koji.models import Locale, Mode, Respondent
from koji_mcp.interviews.services import Services
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.server.tools.results import fail, ok
from koji_mcp.text import clean_koji_text

MAX_BATCH = 500
TEXT_ROWS = 40
FOREGROUND_SECONDS = 15.0  # chat hosts give a tool call about a minute; stay well inside it
# Any id is accepted and looked up: a made-up id reads exactly like another client's ("unknown batch_id").
BatchId = Annotated[str, Field(min_length=1, max_length=100, description="From start_interviews")]
Nullable = WithJsonSchema  # next_cursor and eta_seconds are always present: null when there is none


class BatchResult(BaseModel):
    counts: dict[str, int]
    outcomes: list[dict[str, Any]] = Field(default_factory=list)  # in input order
    dry_run: bool | None = None  # set on dry runs
    batch_id: str | None = None
    status: str | None = None
    eta_seconds: int | None = None


class BatchStatus(BaseModel):
    model_config = ConfigDict(extra="allow")  # resumed, error, created_at, finished_at

    batch_id: str
    status: str  # running, done, cancelled, interrupted or failed
    counts: dict[str, int]  # started, skipped, failed, unknown, pending, cancelled
    outcomes: list[dict[str, Any]]  # row, external_id, outcome, interview_id?, error?
    next_cursor: Annotated[str | None, Nullable({"type": ["string", "null"]})] = None
    eta_seconds: Annotated[int | None, Nullable({"type": ["integer", "null"]})] = None


def _status(document: dict[str, Any]) -> dict[str, Any]:
    """get_batch's structuredContent: every documented key present (null when empty), extras kept."""
    return BatchStatus.model_validate(document).model_dump(mode="json")


async def start_interviews(
    ctx: ServerContext,
    respondents: Annotated[
        list[Respondent],
        Field(min_length=1, max_length=MAX_BATCH,
              description="Each with an external_id."),
    ],
    mode: Annotated[Mode | None, Field(description="Omit for the project's.")] = None,
    locale: Locale | None = None,
    dry_run: Annotated[bool, Field(description="Report only; send nothing.")] = False,
    force: Annotated[
        bool, Field(description="Also start known external_ids.")
    ] = False,
    background: Annotated[bool, Field(description="Always run as a job.")] = False,
) -> Annotated[CallToolResult, BatchResult]:
    """Invite up to 500 respondents once each, paced to Koji's rate limit; try dry_run first. Long
    runs return a batch_id: follow it with get_batch."""
    from koji_mcp.interviews.batches import (  # only when a batch runs
        BatchOutcome,
        describe_counts,
        missing_external_ids_warning,
        plan,
        run_batch,
        summarize,
    )
    from koji_mcp.interviews.ledger import LedgerRowsLost

    services = services_of(ctx)
    total = len(respondents)
    missing_ids = sum(1 for respondent in respondents if not respondent.external_id)
    warning = f"Warning: {missing_external_ids_warning(missing_ids)}; give each an external_id." if missing_ids else ""
    if not dry_run and services.jobs is not None:
        owner = current_owner()
        try:
            services.ledger.check_intact()
        except LedgerRowsLost as exc:
            return _rows_lost(exc)
        decisions = plan(services, owner, respondents, force=force)
        to_start = sum(1 for d in decisions if d is None)
        if background or services.koji.pacer.estimate(to_start) > FOREGROUND_SECONDS:
            batch_id = services.jobs.submit(owner, list(zip(respondents, decisions, strict=True)), mode=mode,
                                            locale=locale, force=force)
            return _job_started(services, batch_id, [d for d in decisions if d is not None], to_start, warning)
    done = 0

    async def progress(outcome: BatchOutcome) -> None:
        nonlocal done
        done += 1
        who = outcome.external_id or outcome.display_name or f"row {outcome.row}"
        await ctx.report_progress(done, total, f"{who}: {outcome.outcome}")

    try:
        outcomes = await run_batch(
            services, current_owner(), respondents, mode=mode, locale=locale, dry_run=dry_run, force=force,
            on_outcome=progress,
        )
    except LedgerRowsLost as exc:
        return _rows_lost(exc)
    counts = summarize(outcomes, total)
    lines = [("Dry run, nothing sent. " if dry_run else "")
             + f"{total} respondent(s): {describe_counts(counts)}."]
    lines.extend(f"- {outcome.line()}" for outcome in outcomes[:TEXT_ROWS])
    if len(outcomes) > TEXT_ROWS:
        lines.append(f"- … {len(outcomes) - TEXT_ROWS} more in structuredContent.outcomes")
    if warning:
        lines.append(warning)
    if counts["unknown"]:
        lines.append("Unknown outcomes may have started (and spent credits); calling again never restarts them. "
                     "Check Koji's dashboard (or list_interviews(status='unknown')); the user can then settle each "
                     "with `koji-mcp ledger resolve ID --started INTERVIEW_ID` or `--not-started`.")
    if counts["not_reached"]:
        lines.append(f"{counts['not_reached']} respondent(s) were not reached: the batch stopped on an error that "
                     "would fail them too. Fix it, then call again: started ones are skipped.")
    if counts["failed"] and not counts["not_reached"]:
        lines.append("Failed respondents were not started; fix the cause and call again (started ones are skipped).")
    return ok("\n".join(lines), BatchResult(counts=counts, outcomes=[o.public() for o in outcomes], dry_run=dry_run))


def _rows_lost(exc: Exception) -> CallToolResult:
    return fail(f"Nothing was sent to Koji: {exc}. Tell the user: no batch can start until the ledger "
                "is restored (or deliberately set aside).")


def _job_started(services: Services, batch_id: str, skipped: list[Any], to_start: int, warning: str) -> CallToolResult:
    from koji_mcp.interviews.batches import describe_counts

    assert services.jobs is not None
    counts = services.jobs.store.counts(batch_id)
    eta = services.jobs.eta(to_start)
    lines = [f"Batch {batch_id} is running in the background: {describe_counts(counts)} "
             f"(about {eta} s at Koji's rate limit)."]
    lines.extend(f"- {outcome.line()}" for outcome in skipped[:TEXT_ROWS])
    if warning:
        lines.append(warning)
    lines.append(f'Follow it with get_batch(batch_id="{batch_id}") (or the resource koji://batches/{batch_id}); '
                 "stop it with cancel_batch. Do not call start_interviews again for these people.")
    return ok("\n".join(lines), BatchResult(counts=counts, outcomes=[o.public() for o in skipped],
                                           batch_id=batch_id, status="running", eta_seconds=eta))


def _status_text(document: dict[str, Any]) -> str:
    from koji_mcp.interviews.batches import describe_counts

    batch_id, status = document["batch_id"], document["status"]
    head = f"Batch {batch_id}: {status}; {describe_counts(document['counts']) or 'no rows'}"
    if document.get("eta_seconds"):
        head += f"; about {document['eta_seconds']} s left"
    if document.get("resumed"):
        head += f"; resumed after a restart ({document['resumed']}x)"
    lines = [head + "."]
    if document.get("error"):
        lines.append(f"Stopped because: {clean_koji_text(document['error'], 300)}")
    for item in document["outcomes"][:TEXT_ROWS]:
        who = clean_koji_text(item.get("external_id") or f"row {item['row']}", 120)
        extra = " ".join(x for x in (item.get("interview_id"), item.get("error") and f"({clean_koji_text(item['error'], 200)})") if x)
        lines.append(f"- row {item['row']} {who}: {item['outcome']} {extra}".rstrip())
    if len(document["outcomes"]) > TEXT_ROWS:
        lines.append(f"- … {len(document['outcomes']) - TEXT_ROWS} more on this page in structuredContent.outcomes")
    if document.get("next_cursor"):
        lines.append(f'More: get_batch(batch_id="{batch_id}", cursor="{document["next_cursor"]}").')
    if status == "running":
        lines.append("Still running: check again later.")
    if document["counts"].get("unknown"):
        lines.append("Unknown outcomes may have started: check list_interviews(status='unknown') before retrying.")
    return "\n".join(lines)


def _unknown_batch(batch_id: str) -> CallToolResult:
    return fail(f"Unknown batch_id {batch_id!r}: no batch with this id was started by you on this server.")


async def get_batch(
    ctx: ServerContext,
    batch_id: BatchId,
    cursor: Annotated[str | None, Field(pattern=r"^[0-9]{1,6}$", description="From next_cursor.")] = None,
) -> Annotated[CallToolResult, BatchStatus]:
    """A background batch: status, counts, outcomes (100 a page)."""
    from koji_mcp.interviews.jobs import UnknownBatch

    services = services_of(ctx)
    if services.jobs is None:
        return _unknown_batch(batch_id)
    try:
        document = services.jobs.document(batch_id, current_owner(), cursor)
    except UnknownBatch:
        return _unknown_batch(batch_id)
    return ok(_status_text(document), _status(document))


async def cancel_batch(ctx: ServerContext, batch_id: BatchId) -> Annotated[CallToolResult, BatchStatus]:
    """Cancel a batch; unsent rows become cancelled. Idempotent."""
    from koji_mcp.interviews.jobs import UnknownBatch

    services = services_of(ctx)
    if services.jobs is None:
        return _unknown_batch(batch_id)
    owner = current_owner()
    try:
        changed = await services.jobs.cancel(batch_id, owner)
        document = services.jobs.document(batch_id, owner)
    except UnknownBatch:
        return _unknown_batch(batch_id)
    note = ("Cancelled: nothing more will be sent." if changed
            else f"Batch {batch_id} had already finished ({document['status']}); nothing changed.")
    return ok(note + "\n" + _status_text(document), _status(document))
