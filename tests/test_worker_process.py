"""The worker process: it comes back by itself when Redis restarts, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

from arq.connections import ArqRedis

from conftest import Process, service_env, wait_until, wait_worker_lost_redis
from contactreports.cli.embedded_redis import free_port, start_redis, stop_redis
from contactreports.jobs.queue import enqueue_run
from contactreports.models import ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.reports import create_report, get_report

QUEUE = "contactreports:restart-test"


async def test_the_worker_survives_a_redis_restart_then_stops_on_sigterm(tmp_path: Path, logs: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'own.db'}"  # a database of its own: no other test's reports
    db = await Database.open(database_url)
    account, _ = await create_account(db, "restart")
    port = free_port()
    redis_process, redis_url = start_redis(tmp_path / "redis-1", port=port)
    worker = Process(["worker"], service_env(database_url, redis_url, queue_name=QUEUE), logs / "worker-restart.log")
    redis = ArqRedis.from_url(redis_url)
    try:
        await wait_until(lambda: redis.exists(f"{QUEUE}:health-check"))  # the worker is polling
        stop_redis(redis_process)
        await wait_worker_lost_redis(worker)
        redis_process, _ = start_redis(tmp_path / "redis-2", port=port)  # a new, empty Redis
        spec = ReportSpec("ann@example.com", ("email.opened",), 0, 10**13, False)
        report = await create_report(db, account.id, spec)
        await wait_until(lambda: enqueue_run(redis, QUEUE, report.account_id, report.id, report.run))

        finished = await wait_until(lambda: _done(db, account.id, report.id))
        assert finished.status == "done"

        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=15) == 0
    finally:
        if worker.popen.poll() is None:
            worker.popen.kill()
        await redis.aclose()
        stop_redis(redis_process)
        await db.close()


async def _done(db: Database, account_id: int, report_id: str):
    report = await get_report(db, account_id, report_id)
    return report if report.status == "done" else None
