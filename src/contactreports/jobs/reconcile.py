"""The reconciler: the database is the truth, Redis only a transport.

- A queued report whose job Redis lost (restart, flush, eviction) is enqueued again; arq
  drops the enqueue while the job is still there, so running this often is harmless.
- A queued report whose job a worker took and then died holding (arq keeps it in progress
  until its timeout, an hour) is enqueued as a retry once it has waited `stale_after`.
- A processing report whose heartbeat stopped (its worker was killed, or lost its job) is
  enqueued as a retry; the retry resumes after the last committed chunk, and a run that
  keeps dying ends `failed` after `max_attempts`.
"""

from __future__ import annotations

from typing import Any

from arq.constants import in_progress_key_prefix

from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.models import now_ms
from contactreports.store.runs import abandoned_runs, queued_runs


async def reconcile(ctx: dict[str, Any]) -> int:
    """Enqueue what the database says should be running; returns how many jobs were added."""
    db, redis, settings = ctx["db"], ctx["redis"], ctx["settings"]
    enqueued = 0
    stale_before = now_ms() - int(settings.stale_after_seconds * 1000)
    for report_id, run, queued_at in await queued_runs(db):
        enqueued += await enqueue_run(redis, settings.queue_name, report_id, run)
        # A live worker claims a job within milliseconds of taking it.
        if queued_at < stale_before and await redis.exists(in_progress_key_prefix + job_id(report_id, run)):
            enqueued += await enqueue_run(redis, settings.queue_name, report_id, run, retry_after_attempt=0)
    for report_id, run, attempts in await abandoned_runs(db, stale_before):
        enqueued += await enqueue_run(redis, settings.queue_name, report_id, run, retry_after_attempt=attempts)
    return enqueued
