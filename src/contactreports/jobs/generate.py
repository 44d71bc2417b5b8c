"""The report job: scan one contact's events and write the report's rows."""

from __future__ import annotations

import logging
from typing import Any

from contactreports.config import Settings
from contactreports.store.database import Database
from contactreports.store.runs import StaleRun, claim_run, copy_chunk, fail_run, finish_run

log = logging.getLogger(__name__)


async def generate_report(ctx: dict[str, Any], report_id: str, run: int) -> str:
    """Compute run `run` of a report. Safe to run twice: only the latest claimant writes."""
    db: Database = ctx["db"]
    settings: Settings = ctx["settings"]
    claim = await claim_run(db, report_id, run)
    if claim is None:
        return "stale"
    if claim.attempts > settings.max_attempts:
        await fail_run(db, report_id, run, f"gave up after {settings.max_attempts} attempts")
        return "failed"
    try:
        while await copy_chunk(db, claim, settings.chunk_rows):
            pass
        row_count = await finish_run(db, claim)
    except StaleRun:
        return "stale"
    except Exception as error:  # a bug or a broken database: say so on the report, not only in a log
        log.exception("report %s run %s failed", report_id, run)
        await fail_run(db, report_id, run, f"internal error: {type(error).__name__}: {error}")
        return "failed"
    return f"done: {row_count} rows"
