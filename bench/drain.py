"""Draining a backlog: N queued reports from N accounts, by one worker process, then by two, on
SQLite and on PostgreSQL (`--backend`).

Builds (once, cached in bench/.cache/) a store through the store layer: N accounts, each with
40 to 300 events over ten contacts, of which one is the contact its report searches. Then, each
on a fresh copy of that store, with one report per account created through the store layer:
- baseline: the report job called directly, one report after another, in this process: no
  queue, no Redis, no other process (the store's own cost);
- 1 worker: every report enqueued as the API does, while no worker runs; then one
  `contactreports worker` process (with a Redis of its own) drains the queue;
- 2 workers: the same with two worker processes.
The rate excludes worker start-up: it runs from the first report's start to the last report's
finish, as the store recorded them. The wall time from starting the processes is printed too.
Every report must end `done` with exactly the rows a plain count finds for its search.

On PostgreSQL (a private server, bench/common.py), the store is built into a database once a run,
and each fresh copy is a database made from it as a template.

    .venv/bin/python bench/drain.py [--size tiny|small|full] [--backend both] [--reports N] [--profile DIR]

`--profile DIR` records each worker process with py-spy (`--gil`: where its Python time goes), as
collapsed stacks, one file each.

Target (DESIGN.md): >= 200 reports/s with one worker process.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
from arq.connections import ArqRedis

from common import PostgresServer, backends, postgres, size_parser, work_folder
from contactreports.catalogue import ACTION_CODES
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.queue import enqueue_run
from contactreports.jobs.redis_client import open_redis
from contactreports.jobs.worker import job_context
from contactreports.models import NewEvent, ReportSpec
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.events import insert_events
from contactreports.store.reports import create_report
from services import commands, profiled, service_env

CACHE = Path(__file__).parent / ".cache"
VERSION = 1  # bump when build() changes, so a cached store is never stale
TARGET = "target@example.com"
START = 1_767_225_600_000  # 2026-01-01
YEAR_MS = 365 * 86_400_000
EMAIL_ACTIONS = tuple(sorted(name for name in ACTION_CODES if name.startswith("email.")))
SPEC = ReportSpec(TARGET, EMAIL_ACTIONS, START, START + YEAR_MS, False)
REPORTS = {"tiny": 50, "small": 500, "full": 2_000}


async def build(url: str, accounts: int) -> None:
    """Each account: 40 to 300 events over ten contacts, a third of them the report's contact."""
    db = await Database.open(url)
    rng = random.Random(1)
    codes = sorted(ACTION_CODES.values())
    started = time.perf_counter()
    for n in range(accounts):
        account, _ = await create_account(db, f"account {n}")
        events = [
            NewEvent(
                None,
                TARGET if rng.random() < 1 / 3 else f"c{rng.randrange(9)}@example.com",
                rng.choice(codes),
                START + rng.randrange(YEAR_MS),
                None,
                b'{"url":"https://x.example/a"}',
            )
            for _ in range(rng.randint(40, 300))
        ]
        await insert_events(db, account.id, events)
    await db.close()
    print(f"built {accounts:,} accounts through the store in {time.perf_counter() - started:.1f} s")


class Built:
    """The built store of one backend, of which `fresh_copy` makes copies to drain once each."""

    def __init__(self, url: str, work: Path, server: PostgresServer | None):
        self.url = url
        self._work = work
        self._server = server

    async def fresh_copy(self, name: str) -> str:
        """A copy of the built store; its URL."""
        if self._server is None:
            path = self._work / f"{name}.db"
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as source, sqlite3.connect(path) as copy:
                source.backup(copy)
            return f"sqlite:///{path}"
        template = self.url.rsplit("/", 1)[1]
        return self._server.url_of(await self._server.create_database(template))


async def built_store(backend: str, accounts: int, cache: Path, work: Path, server: PostgresServer | None) -> Built:
    """SQLite: the store cached in `cache`, built first if it is not there; PostgreSQL: built anew."""
    if backend == "postgresql":
        assert server is not None
        url = server.url_of(await server.create_database())
        await build(url, accounts)
        return Built(url, work, server)
    store = cache / f"drain-v{VERSION}-{accounts}.db"
    if not store.exists():
        cache.mkdir(parents=True, exist_ok=True)
        await build(f"sqlite:///{store}", accounts)
    return Built(f"sqlite:///{store}", work, None)


async def create_reports(url: str, accounts: int) -> list[tuple[int, str]]:
    """A report for each account: (account id, report id)."""
    db = await Database.open(url)
    try:
        return [(account_id, (await create_report(db, account_id, SPEC)).id) for account_id in range(1, accounts + 1)]
    finally:
        await db.close()


async def baseline(url: str, accounts: int) -> tuple[float, float]:
    """Wall and CPU seconds for this process to run every report's job, one after another, with
    no queue."""
    reports = await create_reports(url, accounts)
    db = await Database.open(url)
    ctx = job_context(Settings(database_url=url), db)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        for account_id, report_id in reports:
            await generate_report(ctx, account_id, report_id, 1)
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        await db.close()


async def drain(
    url: str, accounts: int, workers: int, work: Path, profile: Path | None
) -> tuple[float, tuple[float, float]]:
    """Enqueue every report with no worker running, then start `workers` worker processes and
    wait until every report has ended; returns the wall seconds from starting them, and the CPU
    seconds the workers and Redis used from the first report's start to the last one's end."""
    reports = await create_reports(url, accounts)
    with service_env(work / f"redis-{workers}", url) as env:
        settings = Settings(database_url=url, redis_url=env["REDIS_URL"])
        redis = open_redis(settings)
        try:
            for account_id, report_id in reports:
                await enqueue_run(redis, settings.queue_name, account_id, report_id, 1)
            started = time.perf_counter()
            deadline = started + 60 + accounts / 10
            with (
                commands(env, *[["worker"]] * workers) as processes,
                profiled([p.pid for p in processes], profile, f"worker-{workers}"),
            ):
                await wait_until(url, "status != 'queued'", 1, deadline)
                before = await cpu_seconds(processes, redis)
                await wait_until(url, "status IN ('done', 'failed')", accounts, deadline)
                after = await cpu_seconds(processes, redis)
                return time.perf_counter() - started, (after[0] - before[0], after[1] - before[1])
        finally:
            await redis.aclose()


async def cpu_seconds(processes: list[subprocess.Popen], redis: ArqRedis) -> tuple[float, float]:
    """CPU seconds used so far by `processes` (with their threads), and by the Redis server."""
    info = await redis.info("cpu")
    workers = sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in processes)
    return workers, info["used_cpu_user"] + info["used_cpu_sys"]


async def wait_until(url: str, condition: str, reports: int, deadline: float) -> None:
    """Poll the store until `reports` reports meet `condition` (SQL on the reports table)."""
    db = await Database.open(url)
    try:
        while True:
            count = await db.fetch_value(f"SELECT count(*) FROM reports WHERE {condition}")
            if count >= reports:
                return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"only {count} of {reports} reports had {condition} before the deadline")
            await asyncio.sleep(0.01)
    finally:
        await db.close()


async def checked(url: str) -> tuple[float, int]:
    """Check every report is done with exactly its search's rows; (seconds from the first report's
    start to the last one's finish, rows in all)."""
    codes = ", ".join(str(ACTION_CODES[action]) for action in SPEC.actions)
    db = await Database.open(url)
    try:
        wrong = await db.fetch(
            "SELECT * FROM (SELECT r.id, r.status, r.row_count, r.error,"
            " (SELECT count(*) FROM report_rows WHERE report_pk = r.pk) AS copied,"
            " (SELECT count(*) FROM events e WHERE e.account_id = r.account_id AND e.email = r.email"
            f"  AND e.occurred_at >= r.start_at AND e.occurred_at < r.end_at AND e.action IN ({codes})) AS expected"
            " FROM reports r) AS counted WHERE status != 'done' OR row_count != expected OR row_count != copied"
        )
        if wrong:
            raise AssertionError(f"{len(wrong)} reports ended wrong, e.g. {[tuple(row) for row in wrong[:3]]}")
        span = await db.fetch_one(
            "SELECT min(started_at) AS first, max(finished_at) AS last, sum(row_count) AS rows FROM reports"
        )
    finally:
        await db.close()
    return (span["last"] - span["first"]) / 1000, span["rows"]


async def main(accounts: int, cache: Path, profile: Path | None, choice: str) -> None:
    chosen = backends(choice)
    with postgres("postgresql" in chosen) as server:
        for backend in chosen:
            with work_folder(f"drain-{backend}") as work:
                await measure(
                    backend, await built_store(backend, accounts, cache, work, server), accounts, work, profile
                )


async def measure(backend: str, store: Built, accounts: int, work: Path, profile: Path | None) -> None:
    url = await store.fresh_copy("baseline")
    seconds, cpu = await baseline(url, accounts)
    _, rows = await checked(url)
    base_rate = accounts / seconds
    print(
        f"{backend}: drain {accounts:,} queued reports from {accounts:,} accounts, {rows / accounts:.0f} rows a report"
    )
    print("(CPU: milliseconds of CPU time a report, from the first report's start to the last one's end):")
    print(f"  job called in-process, no queue (baseline)  {base_rate:5.0f} reports/s   CPU {cpu_ms(cpu, accounts)}")
    one_rate = 0.0
    for workers in (1, 2):
        url = await store.fresh_copy(f"workers-{workers}")
        wall, (worker_cpu, redis_cpu) = await drain(url, accounts, workers, work, profile)
        seconds, _ = await checked(url)
        rate = accounts / seconds
        print(
            f"  {workers} worker process{'es' if workers > 1 else '  '}                        {rate:5.0f} reports/s"
            f"   CPU {cpu_ms(worker_cpu, accounts)} + Redis {cpu_ms(redis_cpu, accounts)}"
            f"   ({rate / base_rate:.2f}x the baseline"
            + (f", {rate / one_rate:.2f}x one worker" if one_rate else "")
            + f"; {accounts / wall:.0f}/s counting start-up)"
        )
        one_rate = one_rate or rate
    verdict = "met" if one_rate >= 200 else "MISSED"
    print(f"{backend} target: >= 200 reports/s with one worker process: {verdict}")


def cpu_ms(seconds: float, reports: int) -> str:
    return f"{seconds * 1000 / reports:.1f} ms"


if __name__ == "__main__":
    parser = size_parser(__doc__)
    parser.add_argument("--reports", type=int, help="accounts, one queued report each (by size: 50, 500, 2,000)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where built stores are kept")
    parser.add_argument("--profile", type=Path, help="record the workers with py-spy into this folder")
    arguments = parser.parse_args()
    reports = arguments.reports or REPORTS[arguments.size]
    asyncio.run(main(reports, arguments.cache, arguments.profile, arguments.backend))
