"""`koji-mcp ledger resolve`: settle by hand a start whose outcome is unknown.

A start that may have reached Koji (timeout, reset, 5xx, or a crash mid-request) stays in the ledger
as 'unknown' or 'starting': it is never sent again, and every batch counts it as unknown. Koji has no
"list interviews" endpoint, so only a person can tell what happened (Koji's dashboard). This command
records their answer, with who and when:
- `--started INTERVIEW_ID`: it did start; the row becomes that interview. Koji gives an interview's
  session token only to the call that started it, so koji-mcp still cannot relay messages to it or
  complete it (get_interview can read it);
- `--not-started`: it did not; the row is kept as 'not_started' and its external_id is free again.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from koji_mcp.config import EXIT_USAGE, MEMORY_STATE_DIR, ConfigError, Settings
from koji_mcp.interviews.ledger import Ledger, LedgerEntry, ResolveError
from koji_mcp.koji.models import is_valid_interview_id
from koji_mcp.text import clean_koji_text

PLACEHOLDER_PREFIXES = ("unknown-", "pending-")


def run_ledger_command(args: argparse.Namespace) -> int:
    try:
        settings = Settings.load(state_dir=args.state_dir, database_url=args.database_url)
        if settings.state_dir == MEMORY_STATE_DIR and not settings.database_url:
            raise ConfigError("the state dir is :memory:, which keeps no ledger to resolve; give --state-dir "
                              "(or KOJI_MCP_STATE_DIR) as used by the batch or server")
        started = args.started
        if started is not None and (not is_valid_interview_id(started) or started.startswith(PLACEHOLDER_PREFIXES)):
            raise ConfigError(f"--started needs the interview id Koji shows for it (got {started!r})")
        ledger = Ledger.open(settings.state_dir, settings.base_url, database_url=settings.ledger_database_url)
    except ConfigError as exc:
        print(f"koji-mcp ledger: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        before, after = ledger.resolve(args.row, started_id=started, by=args.by or _who())
    except ResolveError as exc:
        print(f"koji-mcp ledger: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        ledger.close()
    print(describe(before, after))
    return 0


def describe(before: LedgerEntry, after: LedgerEntry) -> str:
    who = f" (external_id {clean_koji_text(before.external_id, 120)})" if before.external_id else ""
    stamp = f"recorded by {clean_koji_text(after.resolved_by or '', 60)} at {after.resolved_at}"
    if after.status == "not_started":
        again = (f"{clean_koji_text(before.external_id, 120)} is free again: the next batch or start_interviews "
                 "invites them." if before.external_id else "Nothing holds this row any more.")
        return f"row {before.seq}{who}: {before.interview_id} settled as not started, {stamp}. {again}"
    return (f"row {before.seq}{who}: {before.interview_id} is now interview {after.interview_id} (status active), "
            f"{stamp}. koji-mcp has no session token for it (Koji gives it only to the call that started it), so "
            "it cannot relay messages to it or complete it; get_interview can read it. Reruns skip it.")


def _who() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown user"
