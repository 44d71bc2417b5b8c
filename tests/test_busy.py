"""When another process holds SQLite's write lock too long: a 503 to retry, never a 500 or a failed report."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from arq import Retry

from conftest import ApiAccount, service_env, start_api
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.store.database import Database
from helpers import create_report

# SQLite's one writer: a process holding the file's write lock.
pytestmark = pytest.mark.sqlite_only

EVENT = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:30:00Z"}
SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


@contextmanager
def write_lock_held(database_url: str) -> Iterator[None]:
    """Another process's long write transaction, as a big import or archive would be."""
    conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


@pytest.fixture(scope="module")
def impatient_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    process, url = start_api(service_env(database_url, redis_url, busy_timeout_ms=200), logs, "impatient-api")
    yield url
    process.stop()


async def test_a_write_that_cannot_get_the_lock_is_503_and_stores_nothing(
    impatient_api: str, account, database_url: str
) -> None:
    async with httpx.AsyncClient(base_url=impatient_api, headers=account.headers) as client:
        with write_lock_held(database_url):
            busy = await client.post("/api/events", json=[EVENT])
            busy_report = await client.post("/api/reports", json=SEARCH)
        stored = (await client.get("/api/reports")).json()["items"]
        after = await client.post("/api/events", json=[EVENT])

    assert busy.status_code == busy_report.status_code == 503
    assert busy.headers["content-type"] == "application/problem+json"
    assert busy.headers["retry-after"] == "1"
    assert busy.json()["detail"] == (
        "The database is busy with a large change; try again in a moment. Nothing was stored."
    )
    assert stored == []
    assert after.json() == {"ingested": 1, "duplicates": 0}


async def test_a_job_that_cannot_get_the_lock_is_retried_not_failed(
    paused_client: httpx.AsyncClient, account: ApiAccount, database_url: str
) -> None:
    report = await create_report(paused_client, **SEARCH)
    db = await Database.open(database_url, busy_timeout_ms=200)
    ctx = job_context(Settings(database_url=database_url), db)
    try:
        with write_lock_held(database_url), pytest.raises(Retry):
            await generate_report(ctx, account.id, report["id"], 1)
        assert (await paused_client.get(f"/api/reports/{report['id']}")).json()["status"] == "queued"

        assert await generate_report(ctx, account.id, report["id"], 1) == "done: 0 rows"
    finally:
        await db.close()
