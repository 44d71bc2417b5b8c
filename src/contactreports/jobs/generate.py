"""The report job: scan one contact's events and write the report's rows."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import Retry

from contactreports.config import Settings
from contactreports.store.database import Database, TryAgain
from contactreports.store.runs import Claim, StaleRun, claim_run, copy_chunk, fail_run, release_run

log = logging.getLogger(__name__)
RETRY_BUSY_AFTER_SECONDS = 2


async def generate_report(ctx: dict[str, Any], account_id: int, report_id: str, run: int) -> str:
    """Compute run `run` of a report. Safe to run twice: only the latest claimant writes."""
    try:
        return await _generate(ctx["db"], ctx["settings"], ctx["stopping"], account_id, report_id, run)
    except StaleRun:
        return "stale"
    except TryAgain as error:
        # The database was busy or out of reach: a passing condition, not this report's fault.
        # arq runs the job again shortly; it resumes after its last committed chunk.
        log.warning("report %s run %s: %s (%s); retrying", report_id, run, type(error).__name__, error)
        raise Retry(defer=RETRY_BUSY_AFTER_SECONDS) from error


async def _generate(
    db: Database, settings: Settings, stopping: asyncio.Event, account_id: int, report_id: str, run: int
) -> str:
    claim = await claim_run(db, account_id, report_id, run)
    if claim is None:
        return "stale"
    if reason := _refusal(claim, settings):
        await fail_run(db, claim, reason)
        return "failed"
    try:
        if not await _copy_all(db, claim, settings.chunk_rows, stopping):
            await release_run(db, claim)
            log.info("report %s run %s: handed back after %s rows (worker stopping)", report_id, run, claim.scanned)
            raise Retry()  # back on the queue at once, for another worker or this one's successor
        return f"done: {claim.scanned} rows"
    except (StaleRun, TryAgain, Retry):
        raise
    except Exception as error:  # a bug or a broken database: say so on the report, not only in a log
        log.exception("report %s run %s failed", report_id, run)
        await fail_run(db, claim, f"internal error: {type(error).__name__}: {error}")
        return "failed"


def _refusal(claim: Claim, settings: Settings) -> str | None:
    """Why this run must not go on, if it must not."""
    if claim.attempts > settings.max_attempts:
        return f"gave up after {settings.max_attempts} attempts"
    if claim.total > settings.max_report_rows:
        return (
            f"the search matches {claim.total:,} events, more than the {settings.max_report_rows:,} rows a report "
            "may hold; narrow the time window or the actions"
        )
    return None


async def _copy_all(db: Database, claim: Claim, chunk_rows: int, stopping: asyncio.Event) -> bool:
    """Copy chunk after chunk until a short one finishes the run; False if the worker began to
    shut down before the last one."""
    while await copy_chunk(db, claim, chunk_rows) == chunk_rows:
        # Checked between chunks: each chunk is one short transaction, so SIGTERM never has to
        # cut one off, and the report is handed back at a clean resume point.
        if stopping.is_set():
            return False
    return True
