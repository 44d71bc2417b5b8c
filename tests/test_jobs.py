"""The report job itself: idempotent runs, stale runs, arq deduplication (invariant 3)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from arq.connections import ArqRedis

from conftest import ApiAccount
from contactreports.cli.embedded_redis import embedded_redis
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.jobs.worker import ReportWorker, job_context, worker_settings
from contactreports.models import NewEvent, ReportSpec
from contactreports.store import reports
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.events import insert_events
from helpers import all_rows, create_report, ingest, oracle

SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}
EVENTS = [
    {
        "email": "ann@example.com",
        "action": "email.clicked",
        "occurred_at": f"2026-06-{1 + n % 28:02d}T08:{n % 60:02d}:00Z",
        "details": {"n": n},
    }
    for n in range(1_200)
]


def small_chunks_context(db: Database, database_url: str) -> dict:
    # Chunks of 10: the two copies' transactions interleave over 1,200 rows.
    return job_context(Settings(database_url=database_url, chunk_rows=10), db)


async def test_a_duplicated_job_leaves_no_duplicate_or_missing_rows(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    await ingest(paused_client, EVENTS)
    report = await create_report(paused_client, **SEARCH)  # stays queued: we run its job ourselves
    # Two workers, each with its own connection, as two processes would have.
    other_db = await Database.open(database_url)
    try:
        results = await asyncio.gather(
            *(
                generate_report(small_chunks_context(database, database_url), account.id, report["id"], 1)
                for database in (db, other_db)
            )
        )
    finally:
        await other_db.close()

    # Whichever claimed the run last owns it; the other stops at its next chunk, or finds it done.
    assert sorted(results) == ["done: 1200 rows", "stale"]
    rows = await all_rows(paused_client, report["id"])
    assert rows == oracle(
        EVENTS, {}, email="ann@example.com", actions=["email.clicked"], start=SEARCH["start"], end=SEARCH["end"]
    )
    body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
    assert (body["status"], body["row_count"]) == ("done", 1200)
    assert body["attempts"] in (1, 2)  # 2 if the second took over mid-run (test_runs.py pins that case down)
    # A third copy arriving late finds the run finished and writes nothing.
    assert await generate_report(small_chunks_context(db, database_url), account.id, report["id"], 1) == "stale"
    assert await all_rows(paused_client, report["id"]) == rows


async def test_a_job_for_a_rerun_or_deleted_report_stops_without_writing(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    await ingest(paused_client, EVENTS[:10])
    report = await create_report(paused_client, **SEARCH)
    assert await generate_report(small_chunks_context(db, database_url), account.id, report["id"], 1) == "done: 10 rows"
    assert (await paused_client.post(f"/api/reports/{report['id']}/rerun")).status_code == 202

    assert await generate_report(small_chunks_context(db, database_url), account.id, report["id"], 1) == "stale"
    body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
    assert (body["status"], body["attempts"]) == ("queued", 0)

    assert (await paused_client.delete(f"/api/reports/{report['id']}")).status_code == 204
    assert await generate_report(small_chunks_context(db, database_url), account.id, report["id"], 2) == "stale"


async def test_arq_drops_a_second_enqueue_of_the_same_run(redis_url: str) -> None:
    redis = ArqRedis.from_url(redis_url)
    try:
        assert await enqueue_run(redis, "contactreports:test-dedup", 1, "r1", 1) is True
        assert await enqueue_run(redis, "contactreports:test-dedup", 1, "r1", 1) is False
        assert await enqueue_run(redis, "contactreports:test-dedup", 1, "r1", 2) is True
        assert await redis.zcard("contactreports:test-dedup") == 2
        assert job_id("r1", 2) == "report:r1:run:2"
    finally:
        await redis.delete("contactreports:test-dedup", f"arq:job:{job_id('r1', 1)}", f"arq:job:{job_id('r1', 2)}")
        await redis.aclose()


async def test_a_worker_asks_redis_once_about_each_job_not_at_every_poll(tmp_path: Path) -> None:
    """Before it starts a job, arq WATCHes the job's in-progress mark. It did that, at every poll,
    for each job the worker was itself running: more Redis calls than the jobs' own."""
    jobs, spec = 40, ReportSpec("ann@example.com", ("email.sent",), 0, 10**13, False)
    db = await Database.open(f"sqlite:///{tmp_path / 'own.db'}")
    with embedded_redis() as redis_url:  # its own: only this test's calls counted
        settings = Settings(database_url=f"sqlite:///{tmp_path / 'own.db'}", redis_url=redis_url, chunk_rows=10)
        redis = ArqRedis.from_url(redis_url)
        try:
            for n in range(jobs):  # 20 chunks each: every job spans several polls
                account, _ = await create_account(db, f"account {n}")
                await insert_events(db, account.id, [NewEvent(None, spec.email, 1, t, None, None) for t in range(200)])
                report = await reports.create_report(db, account.id, spec)
                assert await enqueue_run(redis, settings.queue_name, report.account_id, report.id, report.run)
            await redis.config_resetstat()
            overrides = {
                "redis_pool": redis,
                "burst": True,
                "handle_signals": False,
                "cron_jobs": [],
                "on_startup": None,
            }
            await ReportWorker(**{**worker_settings(settings, db, asyncio.Event()), **overrides}).main()
            watches = (await redis.info("commandstats"))["cmdstat_watch"]["calls"]
            done = await db.fetch_value("SELECT count(*) FROM reports WHERE status = 'done' AND row_count = 200")
        finally:
            await redis.aclose()
            await db.close()

    assert done == jobs
    assert watches == jobs
