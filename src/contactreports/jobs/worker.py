"""The arq worker's settings: `contactreports worker` runs `arq.Worker(**worker_settings(settings, db))`."""

from __future__ import annotations

import dataclasses
from typing import Any

from arq import cron
from arq.connections import RedisSettings

from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.reconcile import reconcile
from contactreports.store.database import Database

RECONCILE_EVERY_SECONDS = 10


def redis_settings(settings: Settings) -> RedisSettings:
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is not set (only `contactreports up` starts an embedded Redis)")
    # Retry the connection for about a minute, so a Redis restart does not stop reports.
    return dataclasses.replace(RedisSettings.from_dsn(settings.redis_url), conn_retries=60, conn_retry_delay=1)


def worker_settings(settings: Settings, db: Database) -> dict[str, Any]:
    """Keyword arguments for arq's Worker, tuned for short, database-bound jobs.

    The caller owns `db`: arq skips on_shutdown when Redis is down while it closes, and an
    unclosed aiosqlite connection's thread would keep the process alive.
    """
    return {
        "functions": [generate_report],
        "cron_jobs": [cron(reconcile, second=set(range(0, 60, RECONCILE_EVERY_SECONDS)), run_at_startup=False)],
        "queue_name": settings.queue_name,
        "redis_settings": redis_settings(settings),
        "on_startup": reconcile,
        "ctx": {"settings": settings, "db": db},
        # The poll delay is the floor of submit-to-start latency: 50 ms keeps a small
        # report well under 100 ms end to end, at the cost of ~20 cheap Redis calls a second.
        "poll_delay": settings.poll_delay_seconds,
        # Jobs share one SQLite writer; more than a few at once only queue on its lock.
        "max_jobs": 4,
        # A 1M-row report takes well under a minute; an hour is a generous ceiling. arq's
        # in-progress key outlives a killed worker by this much, so our heartbeat recovers sooner.
        "job_timeout": 3600,
        # On SIGTERM, stop taking jobs and give running ones this long to finish; one still
        # running then is cancelled mid-chunk (rolled back) and resumes later from its last chunk.
        "job_completion_wait": 5,
        # A result key blocks re-enqueueing the same job id; runs are ids of their own, so a
        # short life only lets the reconciler retry a run whose job died before claiming it.
        "keep_result": 60,
    }
