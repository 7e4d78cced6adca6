"""`koji-mcp batch FILE.csv`: invite every participant of a CSV, resumably, exactly once.

Ctrl-C once: no new starts, in-flight ones finish and are recorded, results are written.
Ctrl-C twice: stop now (an in-flight start stays in the ledger as 'starting', i.e. unknown).
A rerun skips everyone already in the ledger, so it resumes where the last run stopped; a start whose
outcome is unknown is never resent and counts as unknown (exit 1) until `koji-mcp ledger resolve`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import TextIO

import anyio

from koji_mcp.interviews.batches import (
    OUTCOME_KINDS,
    BatchOutcome,
    describe_counts,
    missing_external_ids_warning,
    run_batch,
    summarize,
)
from koji_mcp.config import EXIT_USAGE, ConfigError, Settings
from koji_mcp.interviews.ledger import LOCAL_OWNER, Ledger
from koji_mcp.logs import setup_logging
from koji_mcp.text import clean_koji_text
from koji_mcp.koji.models import LOCALE_PATTERN
from koji_mcp.cli.failures import ledger_failure
from koji_mcp.cli.participants import ParticipantsError, read_participants
from koji_mcp.text import plural

COLUMNS = ["row", "external_id", "display_name", "outcome", "interview_id", "error_code", "message"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula (OWASP CSV injection)


def cell(value: object) -> object:
    """A results cell that a spreadsheet shows as text: a leading formula character gets a `'` first."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class Progress:
    """A one-line bar on a terminal; one plain line per participant otherwise."""

    def __init__(self, total: int, stream: TextIO, tty: bool) -> None:
        self.total, self.stream, self.tty = total, stream, tty
        self.counts = dict.fromkeys(OUTCOME_KINDS, 0)
        self.done = 0

    def __call__(self, outcome: BatchOutcome) -> None:
        self.done += 1
        self.counts[outcome.outcome] += 1
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            counts = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items() if v or k != "would_start")
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}  {counts}\x1b[K")
        else:
            self.stream.write(outcome.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def write_results(path: Path, outcomes: list[BatchOutcome], total_rows: int, respondents: list) -> None:
    """Every input row gets a line (unreached rows say so); written atomically.

    The rows go to a fresh, unpredictable file in the target directory (mkstemp: O_EXCL, 0600), so a
    planted `*.tmp` symlink is never followed; os.replace then swaps the finished file in.
    """
    by_row = {o.row: o for o in outcomes}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with open(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            for row in range(1, total_rows + 1):
                o = by_row.get(row)
                person = respondents[row - 1]
                if o is None:
                    values = [row, person.external_id or "", person.display_name or "", "not_reached", "", "", ""]
                else:
                    values = [row, o.external_id or "", o.display_name or "", o.outcome, o.interview_id or "",
                              o.error_code or "", o.message or ""]
                writer.writerow([cell(v) for v in values])
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_batch_command(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    try:
        settings = Settings.load(base_url=args.base_url, state_dir=args.state_dir, database_url=args.database_url,
                                 sandbox=True if args.sandbox else None,
                                 allow_insecure_upstream=True if args.allow_insecure_upstream else None)
        if not args.dry_run:  # a dry run sends nothing, so it needs no key
            settings.require_api_key("add --sandbox (a local Koji) or --dry-run (sends nothing)")
            settings.require_secure_upstream()
        participants = read_participants(args.file)
    except (ConfigError, ParticipantsError) as exc:
        print(f"koji-mcp batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.locale and not re.fullmatch(LOCALE_PATTERN, args.locale):
        print(f"koji-mcp batch: --locale must be a locale code such as en, es or pt-BR (got {args.locale!r})",
              file=sys.stderr)
        return EXIT_USAGE
    if args.concurrency < 1 or args.concurrency > 16:
        print("koji-mcp batch: --concurrency must be between 1 and 16", file=sys.stderr)
        return EXIT_USAGE
    respondents = participants.respondents
    if participants.missing_external_ids:
        print(f"warning: {missing_external_ids_warning(participants.missing_external_ids)}", file=sys.stderr)
    out = results_path(args)
    try:  # find out now, not after spending credits, that the results cannot be written
        with tempfile.NamedTemporaryFile(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent):
            pass
    except OSError as exc:
        print(f"koji-mcp batch: cannot write results to {out}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    tty = sys.stderr.isatty()
    progress = Progress(len(respondents), sys.stderr if tty else sys.stdout, tty)
    try:
        outcomes = anyio.run(_run, settings, args, respondents, progress, out)
    except (ConfigError, WouldOverwrite) as exc:  # e.g. an unsafe state dir (interviews.ledger.UnsafeStateDir)
        print(f"koji-mcp batch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - only ledger failures are explained; the rest re-raise
        failure = ledger_failure(exc, settings.ledger_dir)
        if failure is None:
            raise
        print(f"koji-mcp batch: {failure[0]}", file=sys.stderr)
        return failure[1]
    progress.finish()
    try:
        write_results(out, outcomes, len(respondents), respondents)
    except OSError as exc:
        print(f"koji-mcp batch: could not write {out} ({exc.strerror}); the ledger has every outcome "
              "(koji-mcp list via the list_interviews tool)", file=sys.stderr)
    counts = summarize(outcomes, len(respondents))
    print(f"{'dry run: ' if args.dry_run else ''}{len(respondents)} participant(s): {describe_counts(counts)}. "
          f"Results: {out}")
    if counts["unknown"]:
        print("Unknown outcomes may have started (and spent credits); they are never started again by a rerun:")
        for o in outcomes:
            if o.outcome == "unknown":
                print(f"  row {o.row} {clean_koji_text(o.external_id or o.display_name or '(anonymous)', 120)}: {o.interview_id}")
        print("Check each at Koji, then settle it: `koji-mcp ledger resolve ID --started INTERVIEW_ID` if it started, "
              "`koji-mcp ledger resolve ID --not-started` if not (a rerun then invites them).")
    if counts["not_reached"]:
        print("Not every participant was reached; rerun the same command to resume (started ones are skipped).")
    return 0 if not (counts["failed"] or counts["unknown"] or counts["not_reached"]) else 1


def results_path(args: argparse.Namespace) -> Path:
    """--out, else FILE.results.csv; a dry run gets its own name so it never replaces real results."""
    if args.out:
        return Path(args.out)
    return Path(args.file).with_suffix(".dry-run.csv" if args.dry_run else ".results.csv")


class WouldOverwrite(Exception):
    """The results file lists started interviews that the new file would lose."""


def check_overwrite(out: Path, args: argparse.Namespace, ledger: Ledger) -> None:
    """Refuse to replace a results file holding started interviews, unless nothing would be lost.

    A plain rerun (no --force, same ledger) lists every earlier interview again as skipped, with its
    interview_id, so it may replace the file; a dry run, a --force run or a file from another ledger may not.
    """
    if args.overwrite:
        return
    try:
        with open(out, newline="", encoding="utf-8") as handle:
            ids = [row.get("interview_id") for row in csv.DictReader(handle)]
    except FileNotFoundError:
        return
    except (OSError, UnicodeDecodeError, csv.Error):
        ids = ["?"]  # unreadable: treat it as precious
    ids = [i for i in ids if i]
    if not ids:
        return
    lost = args.dry_run or args.force or not all(ledger.knows(i, LOCAL_OWNER) for i in ids)
    if lost:
        raise WouldOverwrite(f"{out} already lists {plural(len(ids), 'started interview')}; choose another "
                             "--out, or pass --overwrite to replace it")


async def _run(settings: Settings, args: argparse.Namespace, respondents: list, progress: Progress,
               out: Path) -> list[BatchOutcome]:
    from koji_mcp.interviews.services import open_services

    stop = anyio.Event()
    collected: list[BatchOutcome] = []

    def record(outcome: BatchOutcome) -> None:
        collected.append(outcome)
        progress(outcome)

    async with open_services(settings) as services:
        # run_batch checks this too; here a ledger that lost rows fails as itself (exit 2), before a
        # task group would wrap it in an ExceptionGroup
        services.ledger.check_intact()
        check_overwrite(out, args, services.ledger)  # before anything is sent
        async with anyio.create_task_group() as group:
            async def watch_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for _ in signals:
                        if stop.is_set():
                            print("\nstopping now", file=sys.stderr)
                            group.cancel_scope.cancel()
                            return
                        print("\nstopping: finishing the starts in flight (Ctrl-C again to stop now)", file=sys.stderr)
                        stop.set()

            group.start_soon(watch_signals)
            await run_batch(
                services, LOCAL_OWNER, respondents, mode=args.mode, locale=args.locale, dry_run=args.dry_run,
                force=args.force, concurrency=args.concurrency, on_outcome=record, stop=stop,
            )
            group.cancel_scope.cancel()
    return sorted(collected, key=lambda o: o.row)
