"""The database is the truth: runs whose job Redis lost, or whose worker died, are enqueued again."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from arq import Worker
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.queue import job_id
from contactreports.jobs.reconcile import reconcile
from contactreports.jobs.worker import worker_settings
from contactreports.store.database import Database
from contactreports.store.runs import claim_run
from helpers import create_report

SEARCH = {
    "email": "ann@example.com",
    "categories": ["sms"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}
QUEUE = "contactreports:reconcile-test"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    """The session's Redis; afterwards the test queue and its jobs' keys are gone, so no job id
    stays taken for the real worker."""
    client = ArqRedis.from_url(redis_url)
    yield client
    jobs = [f"arq:job:{member.decode()}" for member in await client.zrange(QUEUE, 0, -1)]
    await client.delete(QUEUE, *jobs)
    await client.aclose()


async def queued(redis: ArqRedis) -> list[bytes]:
    return await redis.zrange(QUEUE, 0, -1)


async def test_a_queued_report_whose_job_was_lost_is_enqueued_again(
    paused_client: httpx.AsyncClient, db: Database, database_url: str, redis: ArqRedis
) -> None:
    report = await create_report(paused_client, **SEARCH)
    ctx = {"db": db, "redis": redis, "settings": Settings(database_url=database_url, queue_name=QUEUE)}
    ours = job_id(report["id"], 1)

    await reconcile(ctx)
    assert ours.encode() not in await queued(redis)  # its job is still in Redis: nothing to do
    await redis.delete(f"arq:job:{ours}")  # as a FLUSHALL or eviction would

    await reconcile(ctx)

    assert ours.encode() in await queued(redis)
    assert await redis.exists(f"arq:job:{ours}") == 1


async def test_a_processing_report_whose_heartbeat_stopped_is_retried_under_a_new_job_id(
    paused_client: httpx.AsyncClient, db: Database, database_url: str, redis: ArqRedis
) -> None:
    report = await create_report(paused_client, **SEARCH)
    assert await claim_run(db, report["id"], 1) is not None  # a worker took it, then died
    # Nothing is stale after 30 s yet; with 0 s, the dead worker's heartbeat already is.
    patient = {"db": db, "redis": redis, "settings": Settings(database_url=database_url, queue_name=QUEUE)}
    impatient = {**patient, "settings": Settings(database_url=database_url, queue_name=QUEUE, stale_after_seconds=0)}
    retry = job_id(report["id"], 1, retry_after_attempt=1).encode()

    await reconcile(patient)
    assert retry not in await queued(redis)

    await reconcile(impatient)

    assert retry in await queued(redis)
    assert await generate_report({"db": db, "settings": impatient["settings"]}, report["id"], 1) == "done: 0 rows"
    body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
    assert (body["status"], body["attempts"]) == ("done", 2)


async def test_a_queued_job_held_by_a_dead_worker_is_retried_and_a_real_worker_completes_it(
    paused_client: httpx.AsyncClient, db: Database, database_url: str, redis_url: str, redis: ArqRedis
) -> None:
    report = await create_report(paused_client, **SEARCH)
    settings = Settings(database_url=database_url, redis_url=redis_url, queue_name=QUEUE, stale_after_seconds=0)
    # A worker took the job (arq marks it in progress for the job timeout), then was killed.
    held = f"{in_progress_key_prefix}{job_id(report['id'], 1)}"
    await redis.set(held, b"1", px=60_000)
    try:
        await reconcile({"db": db, "redis": redis, "settings": settings})
        assert job_id(report["id"], 1, retry_after_attempt=0).encode() in await queued(redis)

        worker = Worker(
            **{
                **worker_settings(settings, db),
                "redis_pool": redis,
                "burst": True,
                "handle_signals": False,
                "cron_jobs": [],
                "on_startup": None,
            }
        )
        await worker.main()

        body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
        assert (body["status"], body["attempts"], body["row_count"]) == ("done", 1, 0)
    finally:
        await redis.delete(held)
