"""Nothing lost: workers killed at random, Redis flushed or restarted, the API killed mid-ingest.

Every test here runs real processes against a database and a Redis of this module's own (Redis
is flushed and restarted, and the API killed). The worker reconciles every second and takes a
heartbeat older than half a second as dead, so recovery takes seconds, not the defaults' tens.
The figures each test prints (kills, reports, rows, time a job stayed lost) go into the notes.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from conftest import BACKENDS, ApiAccount, Process, service_env, start_api, wait_until, wait_worker_lost_redis
from contactreports.cli.embedded_redis import free_port, start_redis, stop_redis
from contactreports.config import Settings, sqlite_path
from contactreports.jobs.queue import enqueue_run, job_id
from contactreports.jobs.reconcile import IN_PROGRESS_MARK_MS
from contactreports.models import ReportSpec, datetime_to_ms
from contactreports.store.accounts import create_account
from contactreports.store.database import Database
from contactreports.store.reports import create_report as store_create_report
from helpers import ALL_EMAIL, all_rows, create_report, ingest, oracle, parse_ts, put_campaign
from postgres_server import PostgresServer

CONTACT = "ann@example.com"
CAMPAIGNS = {
    "spring": {"name": "Spring sale", "archived": False},
    "summer": {"name": "Summer sale", "archived": False},
    "winter": {"name": "Winter sale", "archived": True},
}
EVENTS_PER_CONTACT = 3_000
WINDOW = {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"}
# Fast recovery for tests; a chunk of 50 rows takes about a millisecond, so live heartbeats
# are far fresher than half a second, and many attempts allow the 50 kills.
WORKER_SETTINGS = {
    "chunk_rows": 50,
    "stale_after_seconds": 0.5,
    "reconcile_every_seconds": 1,
    "max_attempts": 1_000,
    # Four jobs at a time: of six reports, some wait on the queue while others are processing.
    "max_jobs": 4,
}
RECOVERY_DEADLINE_SECONDS = 60.0
QUEUE = Settings().queue_name
# arq's log line for a reconciler pass that recovered runs.
RECOVERED = re.compile(r"cron:reconcile ● [1-9]")


@dataclass
class Stack:
    """This module's database and Redis; Redis keeps its port across restarts, PostgreSQL (a
    server of the module's own, which it crashes) its port and data."""

    database_url: str
    redis_port: int
    redis_dir: Path
    logs: Path
    postgres: PostgresServer | None = None
    redis_process: Any = None

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def env(self, **settings: Any) -> dict[str, str]:
        return service_env(self.database_url, self.redis_url, **settings)

    def start_redis(self) -> None:
        self.redis_process, _ = start_redis(self.redis_dir, port=self.redis_port)

    def stop_redis(self) -> None:
        stop_redis(self.redis_process)

    async def wait_polling(self) -> None:
        """Until a worker is up and polling the queue (arq writes its health check)."""
        redis = ArqRedis.from_url(self.redis_url)
        try:
            await wait_until(lambda: redis.exists(f"{QUEUE}:health-check"))
        finally:
            await redis.aclose()

    def start_worker(self, name: str = "worker", **settings: Any) -> Process:
        return Process(["worker"], self.env(**{**WORKER_SETTINGS, **settings}), self.logs / f"faults-{name}.log")


@pytest.fixture(scope="module", params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, logs: Path) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("faults")
    postgres = PostgresServer() if request.param == "postgresql" else None
    if postgres is None:
        stack = Stack(f"sqlite:///{home / 'faults.db'}", free_port(), home / "redis", logs)
    else:
        postgres.start()
        stack = Stack(postgres.url, free_port(), home / "redis", logs, postgres)
    stack.start_redis()
    try:
        yield stack
    finally:
        stack.stop_redis()
        if postgres is not None:
            postgres.close()


@pytest.fixture(scope="module")
def faults_api(stack: Stack) -> Iterator[str]:
    process, url = start_api(stack.env(), stack.logs, "faults-api")
    yield url
    process.stop()


@pytest.fixture
async def faults_db(stack: Stack) -> AsyncIterator[Database]:
    database = await Database.open(stack.database_url)
    yield database
    await database.close()


@dataclass
class Contact:
    """An account whose one contact has EVENTS_PER_CONTACT events, and the search on them."""

    account_id: int
    client: httpx.AsyncClient
    events: list[dict]
    search: dict[str, Any]

    def spec(self) -> ReportSpec:
        """The search as the store takes it."""
        moments = [datetime_to_ms(parse_ts(self.search[bound])) for bound in ("start", "end")]
        return ReportSpec(CONTACT, tuple(self.search["actions"]), *moments, self.search["include_archived"])

    def expected_rows(self) -> list[dict]:
        return oracle(self.events, CAMPAIGNS, **self.search)


def contact_events(seed: int) -> list[dict]:
    rng = random.Random(seed)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "id": f"e{n}",
            "email": CONTACT,
            "action": rng.choice(ALL_EMAIL),
            "occurred_at": (first + timedelta(minutes=13 * n, milliseconds=rng.randrange(1000))).isoformat(),
            "campaign_id": rng.choice(list(CAMPAIGNS)),
        }
        for n in range(EVENTS_PER_CONTACT)
    ]


@pytest.fixture
async def contacts(faults_api: str, faults_db: Database) -> AsyncIterator[list[Contact]]:
    """Six accounts with a contact each; half of the searches include archived campaigns."""
    made = []
    for n in range(6):
        account, api_key = await create_account(faults_db, f"faults-{n}")
        client = httpx.AsyncClient(base_url=faults_api, headers=ApiAccount(0, api_key).headers, timeout=30)
        for campaign_id, campaign in CAMPAIGNS.items():
            await put_campaign(client, campaign_id, campaign["name"], archived=campaign["archived"])
        events = contact_events(seed=n)
        await ingest(client, events)
        search = {"email": CONTACT, "actions": ALL_EMAIL, **WINDOW, "include_archived": n % 2 == 0}
        made.append(Contact(account.id, client, events, search))
    yield made
    for contact in made:
        await contact.client.aclose()


async def statuses(db: Database, report_ids: list[str]) -> dict[str, tuple[str, int]]:
    """(status, scanned) of each report, read straight from the database."""
    rows = await db.fetch_any_of(
        f"SELECT id, status, scanned FROM reports WHERE {db.dialect.any_of('id', 'ids')}", {}, "ids", report_ids
    )
    return {row["id"]: (row["status"], row["scanned"]) for row in rows}


async def wait_all_done(db: Database, report_ids: list[str]) -> None:
    async def all_done() -> bool:
        return all(status == "done" for status, _ in (await statuses(db, report_ids)).values())

    await wait_until(all_done, timeout=RECOVERY_DEADLINE_SECONDS)


async def assert_rows_exact(contacts: list[Contact], report_ids: list[str]) -> int:
    """Every report's rows equal the oracle's; returns how many rows were compared."""
    compared = 0
    for contact, report_id in zip(contacts, report_ids, strict=True):
        expected = contact.expected_rows()
        assert await all_rows(contact.client, report_id) == expected
        compared += len(expected)
    return compared


def assert_database_intact(stack: Stack) -> None:
    """SQLite's file is whole after processes writing it were killed (PostgreSQL's server, which
    alone writes its files, recovers them from its write-ahead log)."""
    if stack.postgres is None:
        with sqlite3.connect(sqlite_path(stack.database_url)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


async def create_reports(contacts: list[Contact]) -> list[str]:
    return [(await create_report(contact.client, **contact.search))["id"] for contact in contacts]


async def test_fifty_kill_9s_of_the_worker_lose_no_row(
    stack: Stack, contacts: list[Contact], faults_db: Database
) -> None:
    report_ids = await create_reports(contacts)
    rng = random.Random(50)
    kills = runs = compared = 0
    recoveries = []  # from a kill until the next worker moves a killed run on
    killed_at = None
    while kills < 50:
        worker = stack.start_worker(f"killed-{kills}")
        before = await statuses(faults_db, report_ids)
        if all(status == "done" for status, _ in before.values()):  # check them, then rerun: more to kill in
            compared += await assert_rows_exact(contacts, report_ids)
            runs += len(report_ids)
            for contact, report_id in zip(contacts, report_ids, strict=True):
                assert (await contact.client.post(f"/api/reports/{report_id}/rerun")).status_code == 202
            before, killed_at = await statuses(faults_db, report_ids), None

        async def generating(before: dict = before) -> bool:
            return await statuses(faults_db, report_ids) != before

        await wait_until(generating, timeout=RECOVERY_DEADLINE_SECONDS)
        if killed_at is not None:
            recoveries.append(time.monotonic() - killed_at)
        await asyncio.sleep(rng.uniform(0, 0.05))  # the fault's random moment, not a wait for the worker
        worker.popen.kill()
        worker.popen.wait()
        killed_at = time.monotonic()
        kills += 1

    survivor = stack.start_worker("survivor")
    try:
        await wait_all_done(faults_db, report_ids)
    finally:
        survivor.stop()
    compared += await assert_rows_exact(contacts, report_ids)
    runs += len(report_ids)
    assert_database_intact(stack)
    print(
        f"\n{kills} kill -9s survived; {runs} runs completed and {compared} rows compared, all exact; "
        f"a killed run moved again within {max(recoveries):.1f} s at worst (worker restart included)"
    )


async def wait_some_processing_some_queued(db: Database, report_ids: list[str]) -> None:
    async def mixed() -> bool:
        seen = {status for status, _ in (await statuses(db, report_ids)).values()}
        return {"processing", "queued"} <= seen

    await wait_until(mixed, timeout=RECOVERY_DEADLINE_SECONDS)


async def seconds_until_all_done(db: Database, report_ids: list[str]) -> float:
    started = time.monotonic()
    await wait_all_done(db, report_ids)
    return time.monotonic() - started


async def test_flushall_with_reports_queued_and_processing_loses_none(
    stack: Stack, contacts: list[Contact], faults_db: Database
) -> None:
    worker = stack.start_worker("flushed")
    try:
        report_ids = await create_reports(contacts)  # six reports, four jobs at a time (max_jobs): some wait
        await wait_some_processing_some_queued(faults_db, report_ids)

        redis = Redis.from_url(stack.redis_url)
        await redis.flushall()
        await redis.aclose()

        lost_for = await seconds_until_all_done(faults_db, report_ids)
    finally:
        worker.stop()
    assert RECOVERED.search(worker.log.read_text())  # the reconciler put the flushed jobs back
    compared = await assert_rows_exact(contacts, report_ids)
    assert_database_intact(stack)
    print(f"\nafter FLUSHALL: {len(report_ids)} reports done within {lost_for:.1f} s; {compared} rows compared")


async def test_a_redis_restart_with_reports_queued_and_processing_loses_none(
    stack: Stack, contacts: list[Contact], faults_db: Database
) -> None:
    worker = stack.start_worker("redis-restart")
    try:
        report_ids = await create_reports(contacts)
        await wait_some_processing_some_queued(faults_db, report_ids)

        stack.stop_redis()
        await wait_worker_lost_redis(worker)
        stack.start_redis()  # empty: every queued job is gone
        lost_for = await seconds_until_all_done(faults_db, report_ids)
    finally:
        worker.stop()
    compared = await assert_rows_exact(contacts, report_ids)
    assert_database_intact(stack)
    print(f"\nafter a Redis restart: {len(report_ids)} reports done within {lost_for:.1f} s; {compared} rows compared")


async def test_sigterm_hands_the_running_report_back_after_its_chunk(
    stack: Stack, contacts: list[Contact], faults_db: Database
) -> None:
    contact = contacts[0]
    worker = stack.start_worker("sigterm", chunk_rows=5)  # 600 chunks: SIGTERM lands mid-run
    report_id = (await create_report(contact.client, **contact.search))["id"]

    async def part_way() -> bool:
        status, scanned = (await statuses(faults_db, [report_id]))[report_id]
        return status == "processing" and scanned > 0

    await wait_until(part_way)
    worker.popen.send_signal(signal.SIGTERM)
    assert worker.popen.wait(timeout=15) == 0

    handed_back = (await contact.client.get(f"/api/reports/{report_id}")).json()
    assert (handed_back["status"], handed_back["attempts"]) == ("queued", 0)
    assert 0 < handed_back["progress"]["scanned"] < len(contact.expected_rows())
    assert "handed back after" in worker.log.read_text()

    successor = stack.start_worker("successor")
    try:
        await wait_all_done(faults_db, [report_id])
    finally:
        successor.stop()
    done = (await contact.client.get(f"/api/reports/{report_id}")).json()
    assert (done["status"], done["attempts"]) == ("done", 1)  # the handover did not use up an attempt
    await assert_rows_exact([contact], [report_id])


async def test_kill_9_of_the_api_mid_ingest_stores_a_batch_whole_or_not_at_all(
    stack: Stack, faults_db: Database
) -> None:
    _, api_key = await create_account(faults_db, "faults-ingest")
    headers = ApiAccount(0, api_key).headers
    rng = random.Random(9)
    outcomes = []
    for attempt in range(40):
        email = f"batch-{attempt}@example.com"
        batch = [
            {**event, "email": email, "id": f"{attempt}-{event['id']}", "campaign_id": None}
            for event in contact_events(attempt)
        ]
        process, url = start_api(stack.env(), stack.logs, "faults-ingest-api")
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            sending = asyncio.create_task(http.post("/api/events", json=batch))
            await asyncio.sleep(rng.uniform(0, 0.25))  # the fault's random moment
            process.popen.kill()
            process.popen.wait()
            try:
                assert (await sending).status_code == 200
            except httpx.TransportError:
                pass  # killed before it answered: the batch may or may not have committed
        stored = await faults_db.fetch_value("SELECT count(*) FROM events WHERE email = :email", {"email": email})
        outcomes.append(stored)
        assert stored in (0, len(batch))
        if outcomes.count(0) >= 3 and outcomes.count(len(batch)) >= 3:
            break  # both sides of the commit were hit, more than once
    assert outcomes.count(0) >= 3 and outcomes.count(EVENTS_PER_CONTACT) >= 3, outcomes
    assert_database_intact(stack)
    print(f"\nAPI killed mid-ingest {len(outcomes)} times: {outcomes.count(0)} batches absent, the rest whole")


async def test_a_job_taken_by_a_worker_that_died_is_recovered_by_a_running_workers_reconciler(
    stack: Stack, contacts: list[Contact], faults_db: Database
) -> None:
    contact = contacts[0]
    worker = stack.start_worker("reconciler")
    await stack.wait_polling()
    redis = ArqRedis.from_url(stack.redis_url)
    try:
        report = await store_create_report(faults_db, contact.account_id, contact.spec())
        # Another worker took its job just now, then died: arq marks it in progress for an hour.
        held = in_progress_key_prefix + job_id(report.id, report.run)
        await redis.set(held, b"1", px=IN_PROGRESS_MARK_MS)
        assert await enqueue_run(redis, QUEUE, report.account_id, report.id, report.run)

        await wait_all_done(faults_db, [report.id])
    finally:
        worker.stop()
        await redis.aclose()
    assert RECOVERED.search(worker.log.read_text())
    await assert_rows_exact([contact], [report.id])


async def test_sigterm_while_redis_is_down_stops_the_worker(stack: Stack) -> None:
    worker = stack.start_worker("sigterm-no-redis")
    await stack.wait_polling()
    stack.stop_redis()
    try:
        await wait_worker_lost_redis(worker)
        worker.popen.send_signal(signal.SIGTERM)
        assert worker.popen.wait(timeout=15) == 0
    finally:
        if worker.popen.poll() is None:
            worker.popen.kill()
        stack.start_redis()


async def healthy(http: httpx.AsyncClient) -> bool:
    return (await http.get("/health")).status_code == 200


async def test_a_postgresql_crash_under_running_reports_loses_none(
    stack: Stack, faults_api: str, contacts: list[Contact], faults_db: Database
) -> None:
    """The database stops at once (as in a power cut) with reports processing: the API answers
    503 and /health says the database is down, and nobody's process dies; once the database is
    back, every report completes with exactly its rows."""
    if stack.postgres is None:
        pytest.skip("PostgreSQL's crash: SQLite has no server to crash")
    worker = stack.start_worker("postgres-crash")
    try:
        report_ids = await create_reports(contacts)
        await wait_some_processing_some_queued(faults_db, report_ids)

        stack.postgres.stop("immediate")
        async with httpx.AsyncClient(base_url=faults_api, timeout=30) as http:
            health = await http.get("/health")
        listed = await contacts[0].client.get("/api/reports")
        stack.postgres.start()
        lost_for = await seconds_until_all_done(faults_db, report_ids)
        async with httpx.AsyncClient(base_url=faults_api, timeout=30) as http:
            await wait_until(lambda: healthy(http))  # the same API process, connected again
    finally:
        worker.stop()
    assert (health.status_code, health.json()) == (503, {"status": "unavailable", "database": "down", "redis": "ok"})
    assert (listed.status_code, listed.headers["retry-after"], listed.json()) == (
        503,
        "1",
        {
            "type": "about:blank",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "The database is unavailable; try again in a moment. Nothing was stored.",
        },
    )
    assert worker.popen.returncode == 0  # it stopped when told to, not before
    compared = await assert_rows_exact(contacts, report_ids)
    print(f"\nafter a PostgreSQL crash: {len(report_ids)} reports done in {lost_for:.1f} s; {compared} rows compared")
