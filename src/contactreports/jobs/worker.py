"""The arq worker: `contactreports worker` runs `ReportWorker(**worker_settings(...))`."""

from __future__ import annotations

import asyncio
from typing import Any

from arq import Worker, cron

from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.reconcile import JOB_TIMEOUT_SECONDS, reconcile
from contactreports.jobs.redis_client import open_redis
from contactreports.store.database import Database


class ReportWorker(Worker):
    """arq's Worker, minus a check that costs more than the jobs.

    Each poll, arq reads the queue from its head and asks Redis (four round trips) whether each
    job there is already running, and the head of a backlog is the jobs this very worker runs:
    up to max_jobs of them, every poll. It knows those without asking.
    """

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        await super().start_jobs([job_id for job_id in job_ids if job_id.decode() not in self.tasks])


def job_context(settings: Settings, db: Database, stopping: asyncio.Event | None = None) -> dict[str, Any]:
    """What every job receives; `stopping` is set once the worker is asked to shut down."""
    return {"settings": settings, "db": db, "stopping": stopping or asyncio.Event()}


def worker_settings(settings: Settings, db: Database, stopping: asyncio.Event) -> dict[str, Any]:
    """Keyword arguments for ReportWorker, tuned for short, database-bound jobs.

    The caller owns `db`: arq skips on_shutdown when Redis is down while it closes, and an
    unclosed aiosqlite connection's thread would keep the process alive. The caller also sets
    `stopping` on SIGTERM, so running jobs hand their reports back between chunks.
    """
    every = settings.reconcile_every_seconds
    return {
        "functions": [generate_report],
        "cron_jobs": [cron(reconcile, second=set(range(0, 60, every)), run_at_startup=False)],
        "queue_name": settings.queue_name,
        # Our own client, not arq's RedisSettings, which knows neither Sentinel's own password
        # nor TLS options through Sentinel. While Redis is down, the worker fails at start and
        # run_worker_forever starts it again every second.
        "redis_pool": open_redis(settings),
        "on_startup": reconcile,
        "ctx": job_context(settings, db, stopping),
        # The poll delay is the floor of submit-to-start latency: 50 ms keeps a small
        # report well under 100 ms end to end, at the cost of ~20 cheap Redis calls a second.
        "poll_delay": settings.poll_delay_seconds,
        # arq starts at most max_jobs jobs a poll and then waits out the poll delay, even if they
        # finished long before: 4 capped a backlog at 80 reports/s. Jobs share one SQLite writer,
        # so more at once only queue on its lock; 32 lifts the cap to 640/s and lets a small
        # report pass a few big ones.
        "max_jobs": settings.max_jobs,
        # A 1M-row report takes well under a minute; an hour is a generous ceiling. arq's
        # in-progress mark outlives a killed worker by this much; the reconciler clears it sooner.
        "job_timeout": JOB_TIMEOUT_SECONDS,
        # On SIGTERM, stop taking jobs and give running ones this long to hand their reports back
        # after the chunk in hand (milliseconds). One stuck longer, say on a write lock, is then
        # cancelled: its chunk rolls back and arq queues it again to resume from the last one.
        "job_completion_wait": 5,
        # A result key blocks re-enqueueing the same job id. Results are kept only so tests and
        # operators can read what a job said; a minute bounds how long one can delay a retry.
        "keep_result": 60,
        # A hand-back on SIGTERM, a retry after a busy database and a re-run after a worker died
        # are all arq tries of the same job; our own `max_attempts` decides when a run has failed.
        "max_tries": 1_000_000,
    }
