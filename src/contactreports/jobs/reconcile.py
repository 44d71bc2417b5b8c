"""The reconciler: the database is the truth, Redis only a transport.

Each run has one arq job, `report:<id>:run:<n>`. A run that is *silent* (queued, or processing
with a heartbeat older than `stale_after`) is checked against Redis:
- its job is gone (Redis restarted, flushed or evicted it): it is enqueued again;
- its job is marked in progress for longer than `stale_after`: the worker that took it died,
  since a live one claims a run within milliseconds and heartbeats after every chunk. Clearing
  arq's in-progress mark lets arq hand the job to a live worker now, not when the mark expires
  at the job timeout. Were the holder only slow, its next write would find its lease taken and
  it would stop: a run is never written by two claimants;
- its job ended without finishing it (a duplicate that lost its lease, a timeout): the result
  arq keeps would block the same id for a minute, so it is dropped and the job enqueued again.
arq drops an enqueue while the job is still there, so running this often is harmless. Runs whose
job just waits on the queue (all of a backlog) are picked out first, in one pipelined round trip:
only the others cost Redis a few calls each. A retried run resumes after its last committed
chunk; one that keeps dying ends `failed` after `max_attempts` (see generate.py).
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix

from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.models import now_ms
from contactreports.store.database import Database
from contactreports.store.runs import UnfinishedRun, unfinished_run, unfinished_runs

# arq marks a job in progress for its timeout plus 10 s (Worker.in_progress_timeout_s, pinned
# by a test), so the time left on the mark tells how long ago the job was taken.
JOB_TIMEOUT_SECONDS = 3600
IN_PROGRESS_MARK_MS = (JOB_TIMEOUT_SECONDS + 10) * 1000


async def reconcile(ctx: dict[str, Any]) -> int:
    """Put back what the database says should be running; returns how many runs were recovered."""
    db, redis, settings = ctx["db"], ctx["redis"], ctx["settings"]
    stale_ms = int(settings.stale_after_seconds * 1000)
    silent = [
        run
        for run in await unfinished_runs(db)
        if not (run.status == "processing" and (run.heartbeat_at or 0) >= now_ms() - stale_ms)
    ]
    recovered = 0
    for run, waiting in zip(silent, await _waiting_on_queue(redis, silent), strict=True):
        if not waiting:
            recovered += await recover_run(db, redis, settings.queue_name, run, stale_ms)
    return recovered


async def _waiting_on_queue(redis: ArqRedis, runs: list[UnfinishedRun]) -> list[bool]:
    """For each run: its job is in Redis, not taken and not ended, so recover_run would leave it be."""
    async with redis.pipeline(transaction=False) as pipe:
        for run in runs:
            job = job_id(run.report_id, run.run)
            for prefix in (job_key_prefix, in_progress_key_prefix, result_key_prefix):
                pipe.exists(prefix + job)
        found = await pipe.execute()
    return [found[i : i + 3] == [1, 0, 0] for i in range(0, len(found), 3)]


async def recover_run(db: Database, redis: ArqRedis, queue_name: str, run: UnfinishedRun, stale_ms: int) -> int:
    """Recover one silent run, as read from the database a moment ago; 1 if it was, else 0."""
    if await enqueue_run(redis, queue_name, run.account_id, run.report_id, run.run):
        return 1
    job = job_id(run.report_id, run.run)
    mark_left_ms = await redis.pttl(in_progress_key_prefix + job)  # negative when there is none
    if mark_left_ms > 0:
        held_ms = IN_PROGRESS_MARK_MS - mark_left_ms
        return await redis.delete(in_progress_key_prefix + job) if held_ms > stale_ms else 0
    # arq writes a job's result after the job's last database write. So if the run is still
    # as it was, read again now that the result is there, the job ended without finishing it;
    # if the job has just finished it, `run` above was read before that and is out of date.
    if await redis.exists(result_key_prefix + job) and await unfinished_run(db, run.account_id, run.report_id) == run:
        await redis.delete(result_key_prefix + job)
        return int(await enqueue_run(redis, queue_name, run.account_id, run.report_id, run.run))
    return 0  # waiting on the queue for a worker
