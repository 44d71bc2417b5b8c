"""The reconciler: the database is the truth, Redis only a transport.

A queued report whose job Redis lost (restart, flush, eviction) is enqueued again; arq
drops the enqueue when the job is still there, so running this often is harmless.
"""

from __future__ import annotations

from typing import Any

from contactreports.jobs.queue import enqueue_run
from contactreports.store.reports import queued_runs


async def reconcile(ctx: dict[str, Any]) -> int:
    """Re-enqueue queued runs whose job is gone; returns how many were enqueued."""
    enqueued = 0
    for report_id, run in await queued_runs(ctx["db"]):
        enqueued += await enqueue_run(ctx["redis"], ctx["settings"].queue_name, report_id, run)
    return enqueued
