"""The database is the truth: runs whose job Redis lost are enqueued again, and those a dead worker held, freed.

Each test has a database of its own, so the reconciler sees exactly the test's reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from arq import Worker
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix

from contactreports.config import Settings
from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.jobs.reconcile import reconcile
from contactreports.jobs.worker import job_context, worker_settings
from contactreports.models import Report, ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.reports import create_report, get_report
from contactreports.store.runs import claim_run, copy_chunk

SPEC = ReportSpec("ann@example.com", ("sms.sent",), 0, 10**13, False)
QUEUE = "contactreports:reconcile-test"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    """The session's Redis; afterwards the test queue and its jobs' keys are gone."""
    client = ArqRedis.from_url(redis_url)
    yield client
    jobs = [member.decode() for member in await client.zrange(QUEUE, 0, -1)]
    await client.delete(QUEUE, *(f"arq:job:{job}" for job in jobs), *(in_progress_key_prefix + job for job in jobs))
    await client.aclose()


@pytest.fixture
async def own_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(f"sqlite:///{tmp_path / 'own.db'}")
    yield database
    await database.close()


@pytest.fixture
def settings(own_db: Database, tmp_path: Path, redis_url: str) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'own.db'}", redis_url=redis_url, queue_name=QUEUE)


async def queued_report(db: Database, redis: ArqRedis) -> Report:
    """A report as the API leaves it: queued, its job on the queue."""
    account, _ = await create_account(db, "reconcile")
    report = await create_report(db, account.id, SPEC)
    assert await enqueue_run(redis, QUEUE, report.id, report.run)
    return report


async def queued(redis: ArqRedis) -> list[bytes]:
    return await redis.zrange(QUEUE, 0, -1)


async def run_queue_once(settings: Settings, db: Database, redis: ArqRedis) -> None:
    """A real arq worker, in burst mode: it runs what the test queue holds, then returns."""
    overrides = {"redis_pool": redis, "burst": True, "handle_signals": False, "cron_jobs": [], "on_startup": None}
    await Worker(**{**worker_settings(settings, db, asyncio.Event()), **overrides}).main()


async def test_a_queued_report_whose_job_was_lost_is_enqueued_again(
    own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    ctx = {**job_context(settings, own_db), "redis": redis}
    ours = job_id(report.id, report.run)

    assert await reconcile(ctx) == 0  # its job is still in Redis: nothing to do
    await redis.delete(QUEUE, f"arq:job:{ours}")  # as a FLUSHALL or eviction would

    assert await reconcile(ctx) == 1

    assert await queued(redis) == [ours.encode()]
    await run_queue_once(settings, own_db, redis)
    assert (await get_report(own_db, report.account_id, report.id)).status == "done"


@pytest.mark.parametrize("claimed", [True, False], ids=["after-claiming", "before-claiming"])
async def test_a_run_whose_worker_died_holding_its_job_is_handed_to_a_live_worker(
    claimed: bool, own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    # A worker took the job (arq marks it in progress for the job timeout), then was killed.
    held = in_progress_key_prefix + job_id(report.id, report.run)
    await redis.set(held, b"1", px=60_000)
    if claimed:
        assert await claim_run(own_db, report.id, report.run) is not None
    ctx = {**job_context(settings, own_db), "redis": redis}

    # Not moved for 30 s? Not yet. Not moved since the last pass, with 0 s? Yes: the worker died.
    assert await reconcile(ctx) == 0
    assert await redis.exists(held) == 1
    ctx["settings"] = msgspec.structs.replace(settings, stale_after_seconds=0)
    assert await reconcile(ctx) == 1

    assert await redis.exists(held) == 0
    assert await queued(redis) == [job_id(report.id, report.run).encode()]
    await run_queue_once(settings, own_db, redis)
    done = await get_report(own_db, report.account_id, report.id)
    assert (done.status, done.attempts, done.row_count) == ("done", 2 if claimed else 1, 0)


async def test_a_processing_run_whose_job_redis_lost_is_enqueued_once_its_heartbeat_is_stale(
    own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    assert await claim_run(own_db, report.id, report.run) is not None
    await redis.delete(QUEUE, f"arq:job:{job_id(report.id, report.run)}")  # the worker lives; Redis forgot
    ctx = {**job_context(settings, own_db), "redis": redis}

    assert await reconcile(ctx) == 0  # its heartbeat is fresh: it may still be running
    ctx["settings"] = msgspec.structs.replace(settings, stale_after_seconds=0)
    assert await reconcile(ctx) == 1

    assert await queued(redis) == [job_id(report.id, report.run).encode()]


async def test_a_held_run_that_keeps_moving_is_left_to_its_worker(
    own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    held = in_progress_key_prefix + job_id(report.id, report.run)
    await redis.set(held, b"1", px=60_000)
    ctx = {**job_context(msgspec.structs.replace(settings, stale_after_seconds=0.05), own_db), "redis": redis}
    assert await reconcile(ctx) == 0  # just taken: first seen now

    claim = await claim_run(own_db, report.id, report.run)  # the worker claims it...
    await asyncio.sleep(0.1)
    assert await reconcile(ctx) == 0
    await copy_chunk(own_db, claim, 10)  # ...and heartbeats after its chunk
    await asyncio.sleep(0.1)

    assert await reconcile(ctx) == 0
    assert await redis.exists(held) == 1
