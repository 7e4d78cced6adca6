"""start_interviews: batch invitations from an assistant, with progress notifications."""


from typing import Annotated, Any

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from koji_mcp.koji.models import Locale, Mode, Respondent
from koji_mcp.server.auth import current_owner
from koji_mcp.server.sdk import ServerContext, services_of
from koji_mcp.server.tools.results import fail, ok

MAX_BATCH = 500
TEXT_ROWS = 40


class BatchResult(BaseModel):
    counts: dict[str, int] = Field(description="started, skipped, failed, unknown, would_start, not_reached")
    outcomes: list[dict[str, Any]] = Field(description="One per respondent, in input order.")
    dry_run: bool = False


async def start_interviews(
    ctx: ServerContext,
    respondents: Annotated[
        list[Respondent],
        Field(min_length=1, max_length=MAX_BATCH,
              description=f"1-{MAX_BATCH} people, each like start_interview's respondent; give each an external_id."),
    ],
    mode: Annotated[Mode | None, Field(description="'text' or 'voice' for all; omit for the project's setting.")] = None,
    locale: Locale | None = None,
    dry_run: Annotated[bool, Field(description="Only report what would happen; send nothing.")] = False,
    force: Annotated[
        bool, Field(description="Also start external_ids already in the ledger.")
    ] = False,
) -> Annotated[CallToolResult, BatchResult]:
    """Start interviews for up to 500 respondents, each exactly once, paced to Koji's rate limit.

    Use this tool to invite a list of participants; try dry_run first. Known external_ids are
    skipped unless force; 'unknown' may have started.
    Example: {"respondents": [{"external_id": "u1"}], "dry_run": true}
    """
    from koji_mcp.interviews.batches import (  # only when a batch runs
        BatchOutcome,
        describe_counts,
        missing_external_ids_warning,
        run_batch,
        summarize,
    )
    from koji_mcp.interviews.ledger import LedgerRowsLost

    services = services_of(ctx)
    total = len(respondents)
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
        return fail(f"Nothing was sent to Koji: {exc}. Tell the user: no batch can start until the ledger "
                    "is restored (or deliberately set aside).")
    counts = summarize(outcomes, total)
    lines = [("Dry run, nothing sent. " if dry_run else "")
             + f"{total} respondent(s): {describe_counts(counts)}."]
    lines.extend(f"- {outcome.line()}" for outcome in outcomes[:TEXT_ROWS])
    if len(outcomes) > TEXT_ROWS:
        lines.append(f"- … {len(outcomes) - TEXT_ROWS} more in structuredContent.outcomes")
    missing_ids = sum(1 for respondent in respondents if not respondent.external_id)
    if missing_ids:
        lines.append(f"Warning: {missing_external_ids_warning(missing_ids)}; give each an external_id.")
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
