"""The reconciler: the database is the truth, Redis only a transport.

Each run has one arq job, `report:<id>:run:<n>`, which stays on the queue until it finishes.
- A queued run whose job Redis lost (restart, flush, eviction), or a processing run whose
  heartbeat is older than `stale_after` and whose job is gone, is enqueued again. arq drops
  the enqueue while the job is still there, so running this often is harmless.
- A run whose job is marked in progress, but which has not moved (no new claim, no heartbeat)
  for `stale_after`, was taken by a worker that died: a live worker claims a run within
  milliseconds and heartbeats after every chunk. Clearing arq's in-progress mark lets arq hand
  the job to a live worker now, not when the mark expires (after the job timeout). Were the
  holder only slow, its next write would find its lease taken and it would stop: a run is never
  written by two claimants.
- A retried run resumes after its last committed chunk; one that keeps dying ends `failed`
  after `max_attempts` (see generate.py).
"""

from __future__ import annotations

from typing import Any

from arq.constants import in_progress_key_prefix

from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.models import now_ms
from contactreports.store.runs import UnfinishedRun, unfinished_runs


async def reconcile(ctx: dict[str, Any]) -> int:
    """Put back what the database says should be running; returns how many runs were recovered.

    `ctx["held_jobs"]` carries, from one pass to the next, since when each held run has not moved.
    """
    db, redis, settings = ctx["db"], ctx["redis"], ctx["settings"]
    now = now_ms()
    stale_before = now - int(settings.stale_after_seconds * 1000)
    held_before: dict[str, tuple[UnfinishedRun, int]] = ctx["held_jobs"]
    held_now: dict[str, tuple[UnfinishedRun, int]] = {}
    recovered = 0
    for run in await unfinished_runs(db):
        job = job_id(run.report_id, run.run)
        silent = run.status == "queued" or (run.heartbeat_at or 0) < stale_before
        if silent and await enqueue_run(redis, settings.queue_name, run.report_id, run.run):
            recovered += 1  # Redis had lost the job
        elif await redis.exists(in_progress_key_prefix + job):
            seen, since = held_before.get(job, (run, now))
            if seen != run:  # it moved since the last pass
                since = now
            if since <= stale_before:
                recovered += await redis.delete(in_progress_key_prefix + job)
            else:
                held_now[job] = (run, since)
    ctx["held_jobs"] = held_now
    return recovered
