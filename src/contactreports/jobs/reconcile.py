"""The reconciler: the database is the truth, Redis only a transport.

- A queued report whose job Redis lost (restart, flush, eviction) is enqueued again; arq
  drops the enqueue while the job is still there, so running this often is harmless.
- A processing report whose heartbeat stopped (its worker was killed, or lost its job) is
  enqueued as a retry; the retry resumes after the last committed chunk, and a run that
  keeps dying ends `failed` after `max_attempts`.
"""

from __future__ import annotations

from typing import Any

from contactreports.jobs.queue import enqueue_run
from contactreports.models import now_ms
from contactreports.store.runs import abandoned_runs, queued_runs


async def reconcile(ctx: dict[str, Any]) -> int:
    """Enqueue what the database says should be running; returns how many jobs were added."""
    db, redis, settings = ctx["db"], ctx["redis"], ctx["settings"]
    enqueued = 0
    for report_id, run in await queued_runs(db):
        enqueued += await enqueue_run(redis, settings.queue_name, report_id, run)
    heartbeat_before = now_ms() - int(settings.stale_after_seconds * 1000)
    for report_id, run, attempts in await abandoned_runs(db, heartbeat_before):
        enqueued += await enqueue_run(redis, settings.queue_name, report_id, run, retry_after_attempt=attempts)
    return enqueued
