"""Batch jobs: a long batch of starts runs in the background, lives in the ledger and survives restarts.

A chat host gives a tool call about a minute; Koji allows 60 starts a minute. So a long
`start_interviews` becomes a *job*: planned and recorded synchronously (one row per respondent in
`batch_rows`), then run by the same engine as every batch (`run_batch` -> `start_one`), in the
background of the server process.

Exactly once still holds across crashes: each start is reserved in the ledger *before* it is sent,
and the job row is linked to that reservation in the same transaction (outcome 'sending', seq).
A job found unfinished at startup is resumed: a 'sending' row whose interview became active was
started; one still 'starting' (or 'unknown') may have reached Koji and becomes `unknown`, never
resent; one whose reservation is gone was never sent and is started now.

Two processes never run one job at once: the runner holds a lease in the ledger (holder, expiry),
renewed while it runs; a holder on this host whose process is gone loses it at once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskGroup

from koji_mcp.interviews.batches import BatchOutcome, run_batch
from koji_mcp.interviews.database import Connection
from koji_mcp.interviews.ledger import (
    Ledger,
    ReservationRefused,
    StorageError,
    holder_is_dead,
    now_iso,
    process_holder,
)
from koji_mcp.koji.errors import KojiError
from koji_mcp.koji.models import Respondent

if TYPE_CHECKING:
    from koji_mcp.interviews.services import Services

logger = logging.getLogger(__name__)

JobStatus = Literal["running", "done", "cancelled", "interrupted", "failed"]
ROW_OUTCOMES = ("started", "skipped", "failed", "unknown", "pending", "cancelled")
FINISHED: tuple[str, ...] = ("done", "cancelled", "failed")
LEASE_SECONDS = 15.0
RENEW_EVERY = 5.0
SCAN_EVERY = 5.0
NOTIFY_EVERY = 1.0  # resource-updated notifications: at most about once a second per job
PAGE = 100
BATCH_ID_PATTERN = r"^batch_[0-9a-f]{20}$"



class UnknownBatch(LookupError):
    """No such batch for this owner (another owner's batch reads the same)."""


class JobStore:
    """The jobs' rows in the ledger database (same connection and lock as the ledger)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def create(
        self, owner: str, rows: list[tuple[Respondent, BatchOutcome | None]], *, mode: str | None,
        locale: str | None, force: bool, holder: str,
    ) -> str:
        """Record a new running job leased to `holder`; `rows` carry planned skips (None = to start)."""
        batch_id = f"batch_{uuid.uuid4().hex[:20]}"
        stamp = now_iso()
        with self.ledger._tx() as db:
            db.execute(
                """INSERT INTO batches (batch_id, base_url, owner, status, mode, locale, force, total,
                       lease_holder, lease_until, created_at, updated_at)
                   VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)""",
                (batch_id, self.ledger.base_url, owner, mode, locale, int(force), len(rows), holder,
                 time.time() + LEASE_SECONDS, stamp, stamp),
            )
            db.executemany(
                """INSERT INTO batch_rows (batch_id, row, respondent, external_id, outcome, interview_id, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [
                    (batch_id, row, person.model_dump_json(exclude_none=True), person.external_id,
                     decision.outcome if decision else "pending",
                     decision.interview_id if decision else None, decision.message if decision else None)
                    for row, (person, decision) in enumerate(rows, start=1)
                ],
            )
        return batch_id

    def job(self, batch_id: str, owner: str | None = None) -> Any:
        with self.ledger._read() as db:
            row = db.execute(
                "SELECT * FROM batches WHERE batch_id = ? AND base_url = ?", (batch_id, self.ledger.base_url)
            ).fetchone()
        if row is None or (owner is not None and row["owner"] != owner):
            raise UnknownBatch(batch_id)
        return row

    def counts(self, batch_id: str) -> dict[str, int]:
        with self.ledger._read() as db:
            found = db.execute(
                "SELECT outcome, COUNT(*) FROM batch_rows WHERE batch_id = ? GROUP BY outcome", (batch_id,)
            ).fetchall()
        counts = dict.fromkeys(ROW_OUTCOMES, 0)
        for outcome, number in found:
            counts["pending" if outcome == "sending" else outcome] += number
        return counts

    def page(self, batch_id: str, after_row: int, limit: int = PAGE) -> list[Any]:
        with self.ledger._read() as db:
            return db.execute(
                "SELECT * FROM batch_rows WHERE batch_id = ? AND row > ? ORDER BY row LIMIT ?",
                (batch_id, after_row, limit),
            ).fetchall()

    def pending(self, batch_id: str) -> list[tuple[int, Respondent]]:
        with self.ledger._read() as db:
            rows = db.execute(
                "SELECT row, respondent FROM batch_rows WHERE batch_id = ? AND outcome = 'pending' ORDER BY row",
                (batch_id,),
            ).fetchall()
        return [(row, Respondent.model_validate_json(text)) for row, text in rows]

    def link(self, batch_id: str, row: int, holder: str) -> Callable[[Connection, int], None]:
        """The hook `Ledger.reserve` runs inside its transaction: this row is now being sent.

        Only while `holder` still holds the job's lease, the job runs, no cancel was asked and the
        row is still pending; otherwise the reservation is rolled back (ReservationRefused) and
        nothing is sent. This, not the lease renewal, is what keeps two processes from both sending.
        """

        def on_reserved(db: Connection, seq: int) -> None:
            linked = db.execute(
                """UPDATE batch_rows SET outcome = 'sending', seq = ?
                   WHERE batch_id = ? AND row = ? AND outcome = 'pending'
                     AND EXISTS (SELECT 1 FROM batches WHERE batch_id = ? AND lease_holder = ?
                                 AND status = 'running' AND cancel_requested = 0)""",
                (seq, batch_id, row, batch_id, holder),
            ).rowcount
            if linked != 1:
                raise ReservationRefused(f"batch {batch_id} row {row} is no longer this process's to send")

        return on_reserved

    def record(self, batch_id: str, outcome: BatchOutcome) -> None:
        error = f"{outcome.error_code}: {outcome.message}" if outcome.error_code else outcome.message
        with self.ledger._tx() as db:
            db.execute(
                "UPDATE batch_rows SET outcome = ?, interview_id = ?, error = ? WHERE batch_id = ? AND row = ?",
                (outcome.outcome, outcome.interview_id, error, batch_id, outcome.row),
            )
            db.execute("UPDATE batches SET updated_at = ? WHERE batch_id = ?", (now_iso(), batch_id))

    def reconcile_sending(self, batch_id: str, *, crashed: bool) -> None:
        """Settle rows left 'sending': started, unknown (may have reached Koji), or back to pending.

        `crashed`: the process that sent them is gone, so a reservation still 'starting' may have
        reached Koji (unknown). Otherwise (same process, after its workers stopped) 'starting'
        cannot remain: start_one releases or settles every reservation it made.
        """
        with self.ledger._tx() as db:
            rows = db.execute(
                """SELECT r.row, r.seq, i.status, i.interview_id FROM batch_rows r
                   LEFT JOIN interviews i ON i.seq = r.seq
                   WHERE r.batch_id = ? AND r.outcome = 'sending'""",
                (batch_id,),
            ).fetchall()
            for row, seq, status, interview_id in rows:
                if status is None or status == "not_started":  # released (rejected or never sent), or settled by hand
                    db.execute("UPDATE batch_rows SET outcome = 'pending', seq = NULL WHERE batch_id = ? AND row = ?",
                               (batch_id, row))
                elif status in ("starting", "unknown"):
                    note = "the process running this batch stopped while this start was being sent"
                    if status == "starting" and crashed:
                        interview_id = f"unknown-{uuid.uuid4()}"
                        db.execute(
                            "UPDATE interviews SET interview_id = ?, status = 'unknown', note = ?, updated_at = ? "
                            "WHERE seq = ?", (interview_id, note, now_iso(), seq))
                    db.execute(
                        "UPDATE batch_rows SET outcome = 'unknown', interview_id = ?, error = ? "
                        "WHERE batch_id = ? AND row = ?",
                        (interview_id, f"outcome unknown: {note}; check Koji before starting this person again",
                         batch_id, row))
                else:
                    db.execute("UPDATE batch_rows SET outcome = 'started', interview_id = ? WHERE batch_id = ? AND row = ?",
                               (interview_id, batch_id, row))

    def finish(self, batch_id: str, status: JobStatus, error: str | None = None, *, holder: str | None = None) -> None:
        """Record how the job ended; with `holder`, only if that process still holds the lease."""
        stamp = now_iso()
        with self.ledger._tx() as db:
            if holder is not None and db.execute(
                    "SELECT 1 FROM batches WHERE batch_id = ? AND lease_holder = ?", (batch_id, holder)).fetchone() is None:
                return  # another process took the job over: its status is not ours to write
            if status == "cancelled":
                db.execute("UPDATE batch_rows SET outcome = 'cancelled' WHERE batch_id = ? AND outcome = 'pending'",
                           (batch_id,))
            db.execute(
                """UPDATE batches SET status = ?, error = COALESCE(?, error), lease_holder = NULL, lease_until = NULL,
                       updated_at = ?, finished_at = CASE WHEN ? IN ('done', 'cancelled', 'failed') THEN ? END
                   WHERE batch_id = ?""",
                (status, error, stamp, status, stamp, batch_id),
            )

    def request_cancel(self, batch_id: str) -> None:
        with self.ledger._tx() as db:
            db.execute("UPDATE batches SET cancel_requested = 1 WHERE batch_id = ?", (batch_id,))

    def claim(self, batch_id: str, holder: str, *, resuming: bool) -> bool:
        """Take (or renew) the lease; False if another live process holds it."""
        now = time.time()
        with self.ledger._tx() as db:
            row = db.execute("SELECT status, lease_holder, lease_until FROM batches WHERE batch_id = ?",
                             (batch_id,)).fetchone()
            if row is None or row["status"] in FINISHED:
                return False
            current = row["lease_holder"]
            free = current is None or current == holder or (row["lease_until"] or 0) < now or holder_is_dead(current)
            if not free:
                return False
            db.execute(
                """UPDATE batches SET lease_holder = ?, lease_until = ?, status = 'running',
                       resumed = resumed + ?, updated_at = ? WHERE batch_id = ?""",
                (holder, now + LEASE_SECONDS, 1 if resuming else 0, now_iso(), batch_id),
            )
            return True

    def resumable(self) -> list[str]:
        """Unfinished jobs on this base URL whose lease is free (expired, dead holder, or none)."""
        now = time.time()
        with self.ledger._read() as db:
            rows = db.execute(
                "SELECT batch_id, lease_holder, lease_until FROM batches WHERE base_url = ? "
                "AND status IN ('running', 'interrupted') ORDER BY created_at",
                (self.ledger.base_url,),
            ).fetchall()
        return [r["batch_id"] for r in rows
                if r["lease_holder"] is None or (r["lease_until"] or 0) < now or holder_is_dead(r["lease_holder"])]


@dataclass
class _Running:
    stop: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope | None = None
    cancelled: bool = False


Listener = Callable[[str], Awaitable[None]]


class JobRunner:
    """Runs jobs in the background of one process; knows nothing of MCP (listeners are callbacks)."""

    def __init__(self, services: Services, group: TaskGroup) -> None:
        self.services = services
        self.store = JobStore(services.ledger)
        self.holder = process_holder()  # one per runner: a restarted runner in one process is another holder
        self._group = group
        self._running: dict[str, _Running] = {}
        self.listeners: list[Listener] = []
        self._last_notice: dict[str, float] = {}
        self._notice_due: set[str] = set()
        self._watcher = anyio.CancelScope()

    # -- starting and stopping ------------------------------------------------------------------

    def submit(self, owner: str, rows: list[tuple[Respondent, BatchOutcome | None]], *, mode: str | None,
               locale: str | None, force: bool) -> str:
        batch_id = self.store.create(owner, rows, mode=mode, locale=locale, force=force, holder=self.holder)
        self._launch(batch_id)
        return batch_id

    def start_watching(self) -> None:
        """Resume unfinished jobs now and whenever a lease frees up (a crashed peer's)."""
        self._group.start_soon(self._watch)

    async def _watch(self) -> None:
        with self._watcher:
            while True:
                try:
                    run = self.services.ledger.run  # off the event loop on PostgreSQL
                    for batch_id in await run(self.store.resumable):
                        if batch_id not in self._running and await run(self.store.claim, batch_id, self.holder,
                                                                       resuming=True):
                            await run(self.store.reconcile_sending, batch_id, crashed=True)
                            logger.info("resuming batch %s", batch_id)
                            self._launch(batch_id)
                except StorageError as exc:  # the database unreachable (/readyz says so): one line, try again later
                    logger.warning("could not look for batch jobs to resume: %s", exc.message)
                except Exception:  # a busy or broken ledger must not take the server down: try again later
                    logger.exception("could not look for batch jobs to resume")
                await anyio.sleep(SCAN_EVERY)

    def _launch(self, batch_id: str) -> None:
        running = _Running()
        self._running[batch_id] = running
        self._group.start_soon(self._run, batch_id, running)

    async def shutdown(self) -> None:
        """Process exit: in-flight starts finish and are recorded; the jobs become 'interrupted'."""
        self._watcher.cancel()  # first: it must not take back a job while the others are stopping
        for running in list(self._running.values()):
            running.stop.set()
            if running.scope is not None:
                running.scope.cancel()
        for running in list(self._running.values()):
            with anyio.move_on_after(self.services.settings.timeout + 5, shield=True):
                await running.done.wait()
        self._group.cancel_scope.cancel()

    async def cancel(self, batch_id: str, owner: str) -> bool:
        """Stop sending; wait for in-flight starts; unsent rows become 'cancelled'. False if already finished."""
        job = self.store.job(batch_id, owner)
        if job["status"] in FINISHED:
            return False
        running = self._running.get(batch_id)
        if running is not None:
            running.cancelled = True
            running.stop.set()
            if running.scope is not None:
                running.scope.cancel()
            await running.done.wait()
        elif self._lease_live(job):  # run by another process: ask it, and wait until it has stopped
            self.store.request_cancel(batch_id)
            with anyio.move_on_after(self.services.settings.timeout + 2 * RENEW_EVERY):
                while self.store.job(batch_id)["status"] not in FINISHED and self._lease_live(self.store.job(batch_id)):
                    await anyio.sleep(0.2)
            if self.store.job(batch_id)["status"] not in FINISHED:
                self.store.reconcile_sending(batch_id, crashed=True)
                self.store.finish(batch_id, "cancelled")
        else:  # interrupted (nobody runs it)
            self.store.reconcile_sending(batch_id, crashed=True)
            self.store.finish(batch_id, "cancelled")
        await self._notify(batch_id, force=True)
        return True

    # -- the run --------------------------------------------------------------------------------

    async def _run(self, batch_id: str, running: _Running) -> None:
        status: JobStatus = "interrupted"
        error: str | None = None
        try:
            job = self.store.job(batch_id)
            pending = self.store.pending(batch_id)
            hard: list[KojiError] = []

            async def on_outcome(outcome: BatchOutcome) -> None:
                self.store.record(batch_id, outcome)  # before any await: a cancel cannot lose it
                await self._notify(batch_id)

            with anyio.CancelScope() as scope:
                running.scope = scope
                renew = anyio.CancelScope()

                async def keep_lease() -> None:
                    # Every second: a cancel asked by another process? Every RENEW_EVERY: renew the lease.
                    ticks = 0
                    with renew:
                        while True:
                            await anyio.sleep(1.0)
                            ticks += 1
                            try:
                                run = self.services.ledger.run  # off the event loop on PostgreSQL
                                current = await run(self.store.job, batch_id)
                                lost = ticks % int(RENEW_EVERY) == 0 and not await run(
                                    self.store.claim, batch_id, self.holder, resuming=False)
                            except Exception:  # a busy ledger: try again at the next tick (sends check the lease)
                                logger.warning("could not check the lease of batch %s; retrying", batch_id)
                                continue
                            if current["cancel_requested"] or current["status"] in FINISHED or lost:
                                running.cancelled = bool(current["cancel_requested"]) or current["status"] == "cancelled"
                                running.stop.set()
                                scope.cancel()
                                return

                async with anyio.create_task_group() as group:
                    group.start_soon(keep_lease)
                    await run_batch(
                        self.services, job["owner"], [p for _, p in pending], rows=[r for r, _ in pending],
                        mode=job["mode"], locale=job["locale"], force=bool(job["force"]),
                        on_outcome=on_outcome, stop=running.stop, failures=hard,
                        on_reserved=lambda row: self.store.link(batch_id, row, self.holder),
                    )
                    renew.cancel()
            if running.cancelled:
                status = "cancelled"
            elif hard:
                status, error = "failed", _reason(hard[0])
            elif not running.stop.is_set():
                status = "done"
        except Exception as exc:  # a broken ledger or a bug: the job must not vanish silently
            logger.exception("batch %s stopped unexpectedly", batch_id)
            status, error = "failed", f"koji-mcp stopped this batch: {type(exc).__name__}"
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    self.store.reconcile_sending(batch_id, crashed=False)
                    if status == "interrupted" and self.store.job(batch_id)["status"] == "cancelled":
                        status = "cancelled"
                    self.store.finish(batch_id, status, error, holder=self.holder)
                except Exception:
                    logger.exception("could not record the end of batch %s", batch_id)
                self._running.pop(batch_id, None)
                running.done.set()
                try:
                    await self._notify(batch_id, force=True)
                except Exception:
                    logger.exception("could not notify about batch %s", batch_id)

    # -- reading --------------------------------------------------------------------------------

    def document(self, batch_id: str, owner: str, cursor: str | None = None) -> dict[str, Any]:
        """get_batch's answer (and the resource's): status, counts, one page of outcomes, eta."""
        job = self.store.job(batch_id, owner)
        after = int(cursor) if cursor else 0
        rows = self.store.page(batch_id, after, PAGE + 1)
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        counts = self.store.counts(batch_id)
        status = job["status"]
        if status == "running" and batch_id not in self._running and not self._lease_live(job):
            status = "interrupted"
        outcomes = []
        for row in rows:
            item: dict[str, Any] = {"row": row["row"], "external_id": row["external_id"],
                                    "outcome": "pending" if row["outcome"] == "sending" else row["outcome"]}
            if row["interview_id"]:
                item["interview_id"] = row["interview_id"]
            if row["error"]:
                item["error"] = row["error"]
            outcomes.append(item)
        document: dict[str, Any] = {
            "batch_id": batch_id,
            "status": status,
            "counts": counts,
            "outcomes": outcomes,
            "next_cursor": str(rows[-1]["row"]) if more else None,
            "eta_seconds": self.eta(counts["pending"]) if status == "running" else None,
            "resumed": int(job["resumed"] or 0),
            "created_at": job["created_at"],
        }
        if job["error"]:
            document["error"] = job["error"]
        if job["finished_at"]:
            document["finished_at"] = job["finished_at"]
        return document

    def eta(self, pending: int) -> int:
        return int(round(self.services.koji.pacer.estimate(pending)))

    @staticmethod
    def _lease_live(job: Any) -> bool:
        return (job["lease_until"] or 0) >= time.time() and not holder_is_dead(job["lease_holder"])

    # -- notifications --------------------------------------------------------------------------

    async def _notify(self, batch_id: str, *, force: bool = False) -> None:
        """Tell listeners the job changed, at most about once a second (the last change always arrives)."""
        if not self.listeners:
            return
        now = time.monotonic()
        last = self._last_notice.get(batch_id, 0.0)
        if not force and now - last < NOTIFY_EVERY:
            if batch_id not in self._notice_due:
                self._notice_due.add(batch_id)
                self._group.start_soon(self._notify_later, batch_id, NOTIFY_EVERY - (now - last))
            return
        self._last_notice[batch_id] = now
        for listener in list(self.listeners):
            try:
                await listener(batch_id)
            except Exception:
                logger.exception("a batch listener failed")

    async def _notify_later(self, batch_id: str, delay: float) -> None:
        await anyio.sleep(delay)
        self._notice_due.discard(batch_id)
        await self._notify(batch_id, force=True)


def _reason(error: KojiError) -> str:
    code = getattr(error, "code", None) or type(error).__name__
    return f"{code}: {error.message}"


@asynccontextmanager
async def run_jobs(services: Services) -> AsyncIterator[JobRunner]:
    """Run batch jobs in the background of `services` (a server): new ones, and unfinished ones
    found in the ledger (a crashed or closed earlier server), unless this server may not start
    interviews (read-only, or start_interviews not among its tools). On exit, in-flight starts finish
    and are recorded, and running jobs become 'interrupted' (the next server resumes them)."""
    settings = services.settings
    starts_allowed = not settings.read_only and (settings.tools is None or "start_interviews" in settings.tools)
    async with anyio.create_task_group() as group:
        runner = JobRunner(services, group)
        services.jobs = runner
        if starts_allowed:  # a read-only server (or one without start_interviews) never sends a start
            runner.start_watching()
        try:
            yield runner
        finally:
            services.jobs = None
            await runner.shutdown()


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)
