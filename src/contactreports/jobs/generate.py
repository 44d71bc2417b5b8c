"""The report job: scan one contact's events and write the report's rows."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry

from contactreports.config import Settings
from contactreports.store.database import Database, StoreBusy
from contactreports.store.runs import StaleRun, claim_run, copy_chunk, fail_run, finish_run

log = logging.getLogger(__name__)
RETRY_BUSY_AFTER_SECONDS = 2


async def generate_report(ctx: dict[str, Any], report_id: str, run: int) -> str:
    """Compute run `run` of a report. Safe to run twice: only the latest claimant writes."""
    try:
        return await _generate(ctx["db"], ctx["settings"], report_id, run)
    except StaleRun:
        return "stale"
    except StoreBusy as error:
        # Another process held the write lock too long: a passing condition, not this report's
        # fault. arq runs the job again shortly; it resumes after its last committed chunk.
        log.warning("report %s run %s: database busy (%s); retrying", report_id, run, error)
        raise Retry(defer=RETRY_BUSY_AFTER_SECONDS) from error


async def _generate(db: Database, settings: Settings, report_id: str, run: int) -> str:
    claim = await claim_run(db, report_id, run)
    if claim is None:
        return "stale"
    if claim.attempts > settings.max_attempts:
        await fail_run(db, claim, f"gave up after {settings.max_attempts} attempts")
        return "failed"
    try:
        while await copy_chunk(db, claim, settings.chunk_rows):
            pass
        return f"done: {await finish_run(db, claim)} rows"
    except (StaleRun, StoreBusy):
        raise
    except Exception as error:  # a bug or a broken database: say so on the report, not only in a log
        log.exception("report %s run %s failed", report_id, run)
        await fail_run(db, claim, f"internal error: {type(error).__name__}: {error}")
        return "failed"
