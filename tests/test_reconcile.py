"""The database is the truth: a queued report whose job Redis lost is enqueued again."""

from __future__ import annotations

import httpx
from arq.connections import ArqRedis

from contactreports.config import Settings
from contactreports.jobs.queue import job_id
from contactreports.jobs.reconcile import reconcile
from contactreports.store.database import Database
from helpers import create_report

SEARCH = {"email": "ann@example.com", "categories": ["sms"],
          "start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
QUEUE = "contactreports:reconcile-test"


async def test_a_queued_report_whose_job_was_lost_is_enqueued_again(
    paused_client: httpx.AsyncClient, db: Database, database_url: str, redis_url: str
) -> None:
    report = await create_report(paused_client, **SEARCH)
    redis = ArqRedis.from_url(redis_url)
    ctx = {"db": db, "redis": redis, "settings": Settings(database_url=database_url, queue_name=QUEUE)}
    try:
        assert await reconcile(ctx) == 0  # every queued report still has its job
        await redis.delete(f"arq:job:{job_id(report['id'], 1)}")  # as a FLUSHALL or eviction would

        assert await reconcile(ctx) == 1
        assert await redis.zrange(QUEUE, 0, -1) == [job_id(report["id"], 1).encode()]
        assert await reconcile(ctx) == 0
    finally:
        await redis.delete(QUEUE, f"arq:job:{job_id(report['id'], 1)}")
        await redis.aclose()
