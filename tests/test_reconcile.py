"""The database is the truth: runs whose job Redis lost are enqueued again, and those a dead worker held, freed.

Each test has a database of its own, so the reconciler sees exactly the test's reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, result_key_prefix

from contactreports.config import Settings
from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.jobs.reconcile import IN_PROGRESS_MARK_MS, reconcile, recover_run
from contactreports.jobs.worker import ReportWorker, job_context, worker_settings
from contactreports.models import Report, ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.reports import create_report, get_report
from contactreports.store.runs import claim_run, unfinished_runs

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
    assert await enqueue_run(redis, QUEUE, report.account_id, report.id, report.run)
    return report


async def queued(redis: ArqRedis) -> list[bytes]:
    return await redis.zrange(QUEUE, 0, -1)


async def run_queue_once(settings: Settings, db: Database, redis: ArqRedis) -> None:
    """A real arq worker, in burst mode: it runs what the test queue holds, then returns."""
    overrides = {"redis_pool": redis, "burst": True, "handle_signals": False, "cron_jobs": [], "on_startup": None}
    await ReportWorker(**{**worker_settings(settings, db, asyncio.Event()), **overrides}).main()


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


async def heartbeat_back(db: Database, report_id: str, seconds: float) -> None:
    """Make a run's last heartbeat that much older, as if its worker had gone silent then."""
    async with db.transaction() as conn:
        await conn.execute(
            "UPDATE reports SET heartbeat_at = heartbeat_at - :ms WHERE id = :id",
            {"ms": int(seconds * 1000), "id": report_id},
        )


def taken(seconds_ago: float) -> int:
    """The time left on arq's in-progress mark of a job taken that long ago."""
    return IN_PROGRESS_MARK_MS - int(seconds_ago * 1000)


def test_the_in_progress_mark_lasts_as_long_as_the_reconciler_assumes(settings: Settings, own_db: Database) -> None:
    worker = ReportWorker(**worker_settings(settings, own_db, asyncio.Event()), handle_signals=False)
    assert worker.in_progress_timeout_s * 1000 == IN_PROGRESS_MARK_MS


@pytest.mark.parametrize("claimed", [True, False], ids=["after-claiming", "before-claiming"])
async def test_a_run_whose_worker_died_holding_its_job_is_handed_to_a_live_worker(
    claimed: bool, own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    held = in_progress_key_prefix + job_id(report.id, report.run)
    # A worker took the job 5 s ago (arq marks it in progress for the job timeout), then was killed.
    await redis.set(held, b"1", px=taken(seconds_ago=5))
    if claimed:  # ...having claimed the run, its last heartbeat 5 s ago
        assert await claim_run(own_db, report.account_id, report.id, report.run) is not None
        await heartbeat_back(own_db, report.id, seconds=5)
    ctx = {**job_context(settings, own_db), "redis": redis}

    assert await reconcile(ctx) == 0  # within 30 s a live worker might still be starting it
    assert await redis.exists(held) == 1
    ctx["settings"] = msgspec.structs.replace(settings, stale_after_seconds=2)
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
    assert await claim_run(own_db, report.account_id, report.id, report.run) is not None
    await redis.delete(QUEUE, f"arq:job:{job_id(report.id, report.run)}")  # the worker lives; Redis forgot
    ctx = {**job_context(settings, own_db), "redis": redis}

    assert await reconcile(ctx) == 0  # its heartbeat is fresh: it may still be running
    await heartbeat_back(own_db, report.id, seconds=31)
    assert await reconcile(ctx) == 1

    assert await queued(redis) == [job_id(report.id, report.run).encode()]


async def test_a_live_run_is_left_to_its_worker_however_long_ago_it_was_taken(
    own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    held = in_progress_key_prefix + job_id(report.id, report.run)
    await redis.set(held, b"1", px=taken(seconds_ago=50 * 60))
    await claim_run(own_db, report.account_id, report.id, report.run)  # it heartbeats as it goes

    assert await reconcile({**job_context(settings, own_db), "redis": redis}) == 0

    assert await redis.exists(held) == 1


async def test_a_run_whose_job_ended_without_finishing_it_is_enqueued_again(
    own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    ours = job_id(report.id, report.run)
    # The job ran as a duplicate that lost its lease: arq removed it and kept its result.
    await redis.delete(QUEUE, f"arq:job:{ours}")
    await redis.set(f"{result_key_prefix}{ours}", b"stale", px=60_000)
    assert not await enqueue_run(redis, QUEUE, report.account_id, report.id, report.run)  # the result blocks its id

    assert await reconcile({**job_context(settings, own_db), "redis": redis}) == 1

    assert await queued(redis) == [ours.encode()]
    assert await redis.exists(f"{result_key_prefix}{ours}") == 0


async def test_a_run_finished_since_the_reconciler_read_it_is_left_alone(
    own_db: Database, settings: Settings, redis: ArqRedis
) -> None:
    report = await queued_report(own_db, redis)
    (seen,) = await unfinished_runs(own_db)  # the reconciler reads the run as queued...
    await run_queue_once(settings, own_db, redis)  # ...and a worker finishes it meanwhile
    result = f"{result_key_prefix}{job_id(report.id, report.run)}"
    said = await redis.get(result)

    assert await recover_run(own_db, redis, QUEUE, seen, stale_ms=0) == 0

    assert await redis.get(result) == said  # the job's own result, not a second run's "stale"
    assert await queued(redis) == []
