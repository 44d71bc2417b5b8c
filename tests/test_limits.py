"""Limits: per-account request rates shared by every API process, and rows per report."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import PAUSED_QUEUE, ApiAccount, Process, service_env, start_api
from contactreports.cli.embedded_redis import free_port
from contactreports.store.database import Database
from helpers import ALL_EMAIL, create_report, ingest, wait_done

SEARCH = {
    "email": "ann@example.com",
    "actions": ALL_EMAIL,
    "start": "2026-01-01T00:00:00Z",
    "end": "2026-02-01T00:00:00Z",
}
LIMITED_QUEUE = "contactreports:limited"


@pytest.fixture(scope="module")
def rate_limited_apis(database_url: str, redis_url: str, logs: Path) -> Iterator[list[str]]:
    """Two API processes sharing low limits; no worker, so reports stay queued."""
    env = service_env(
        database_url, redis_url, queue_name=PAUSED_QUEUE, report_rate_limit="3/minute", ingest_rate_limit="2/minute"
    )
    started = [start_api(env, logs, f"rate-limited-api-{n}") for n in range(2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.stop()


@pytest.fixture(scope="module")
def small_reports_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    """An API and a worker of their own, whose reports may hold at most 5 rows."""
    env = service_env(database_url, redis_url, queue_name=LIMITED_QUEUE, max_report_rows=5)
    worker = Process(["worker"], env, logs / "small-reports-worker.log")
    api, url = start_api(env, logs, "small-reports-api")
    yield url
    api.stop()
    worker.stop()


def clients(urls: list[str], account: ApiAccount) -> list[httpx.AsyncClient]:
    return [httpx.AsyncClient(base_url=url, headers=account.headers, timeout=30) for url in urls]


def assert_too_many(response: httpx.Response, what: str, limit: str) -> None:
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": f"Too many {what}: this account may make {limit}. Try again in {retry_after} s; nothing was stored.",
    }


async def test_report_creation_is_limited_per_account_across_api_processes(
    rate_limited_apis: list[str], new_account
) -> None:
    ann, bob = await new_account(), await new_account()
    first, second = clients(rate_limited_apis, ann)
    try:
        responses = await asyncio.gather(*(http.post("/api/reports", json=SEARCH) for http in [first, second] * 5))

        # Exactly three of ten pass the limit, though two processes counted them: one is
        # accepted and two meet the one-active rule.
        assert sorted(r.status_code for r in responses) == [202, 409, 409] + [429] * 7
        too_many = next(r for r in responses if r.status_code == 429)
        assert_too_many(too_many, "reports created", "3 per 1 minute")
        accepted = next(r for r in responses if r.status_code == 202).json()
        assert [r["id"] for r in (await first.get("/api/reports")).json()["items"]] == [accepted["id"]]
        # A rerun makes a report's work again: it counts too.
        assert_too_many(await second.post(f"/api/reports/{accepted['id']}/rerun"), "reports created", "3 per 1 minute")
        # Reading is not limited, and other accounts have counts of their own.
        assert (await first.get(f"/api/reports/{accepted['id']}")).status_code == 200
        async with httpx.AsyncClient(base_url=rate_limited_apis[1], headers=bob.headers) as other:
            assert (await other.post("/api/reports", json=SEARCH)).status_code == 202
    finally:
        for http in (first, second):
            await http.aclose()


async def test_ingestion_is_limited_per_account_and_a_refused_batch_stores_nothing(
    rate_limited_apis: list[str], account: ApiAccount, db: Database
) -> None:
    first, second = clients(rate_limited_apis, account)
    event = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-01-05T10:00:00Z"}
    try:
        assert await ingest(first, [{**event, "id": "e1"}]) == {"ingested": 1, "duplicates": 0}
        assert await ingest(second, [{**event, "id": "e2"}]) == {"ingested": 1, "duplicates": 0}

        refused = await first.post("/api/events", json=[{**event, "id": "e3"}])

        assert_too_many(refused, "event batches", "2 per 1 minute")
        stored = await db.fetch_value(
            "SELECT count(*) FROM events WHERE account_id = :account_id", {"account_id": account.id}
        )
        assert stored == 2
    finally:
        for http in (first, second):
            await http.aclose()


async def test_a_search_matching_more_rows_than_a_report_may_hold_fails_saying_so(
    small_reports_api: str, account: ApiAccount
) -> None:
    async with httpx.AsyncClient(base_url=small_reports_api, headers=account.headers, timeout=30) as http:
        await ingest(
            http,
            [
                {"email": "ann@example.com", "action": "email.opened", "occurred_at": f"2026-01-0{day}T10:00:00Z"}
                for day in range(1, 7)
            ],
        )
        too_big = await create_report(http, **SEARCH)

        failed = await wait_done(http, too_big["id"])

        assert (failed["status"], failed["row_count"]) == ("failed", None)
        assert failed["error"] == (
            "the search matches 6 events, more than the 5 rows a report may hold; narrow the time window or the actions"
        )
        assert (await http.get(f"/api/reports/{too_big['id']}/rows")).status_code == 409
        # The account is free again, and a narrower search fits.
        narrower = await create_report(http, **{**SEARCH, "start": "2026-01-02T00:00:00Z"})
        assert (await wait_done(http, narrower["id"]))["row_count"] == 5


async def test_without_redis_the_limits_are_not_checked_rather_than_refusing_everything(
    database_url: str, logs: Path, account: ApiAccount, db: Database
) -> None:
    nobody_listens = f"redis://127.0.0.1:{free_port()}/0"
    env = service_env(database_url, nobody_listens, report_rate_limit="1/minute", ingest_rate_limit="1/minute")
    process, url = start_api(env, logs, "limits-without-redis", redis=False)
    event = {"email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-01-05T10:00:00Z"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=account.headers, timeout=30) as http:
            for n in range(2):
                assert await ingest(http, [{**event, "id": f"e{n}"}]) == {"ingested": 1, "duplicates": 0}
            # Stored and queued: the reconciler enqueues it once Redis is back.
            assert (await create_report(http, **SEARCH))["status"] == "queued"
    finally:
        process.stop()


@pytest.fixture(scope="module")
def one_report_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    """One report a minute per account, no worker, and a session cookie httpx sends over plain HTTP."""
    env = service_env(
        database_url,
        redis_url,
        queue_name=PAUSED_QUEUE + ":one-report",
        report_rate_limit="1/minute",
        web_secure_cookie="false",
    )
    process, url = start_api(env, logs, "one-report-api")
    yield url
    process.stop()


async def test_the_web_pages_rerun_counts_against_the_same_limit_as_the_apis(one_report_api: str, new_account) -> None:
    account = await new_account()
    [api] = clients([one_report_api], account)
    async with api, httpx.AsyncClient(base_url=one_report_api, timeout=30) as web:
        report = await api.post("/api/reports", json=SEARCH)  # the account's one report this minute
        assert report.status_code == 202
        assert (await web.post("/sign-in", data={"api_key": account.api_key})).status_code == 303
        for _ in range(2):
            rerun = await web.post(f"/reports/{report.json()['id']}/rerun")
            assert (rerun.status_code, rerun.headers["location"]) == (303, "/")
            page = (await web.get("/")).text
            notice = re.search(r'<p class="notice" role="status">(.*?)</p>', page)
            assert notice is not None, page
            assert re.fullmatch(
                r"Too many reports created: this account may make 1 per 1 minute\. "
                r"Try again in ([1-9]|[1-5][0-9]|60) s; nothing was stored\.",
                notice[1],
            )
        # The API agrees, and nothing was queued again: the report is still the one the API made.
        assert_too_many(
            await api.post(f"/api/reports/{report.json()['id']}/rerun"), "reports created", "1 per 1 minute"
        )
        assert (await api.get(f"/api/reports/{report.json()['id']}")).json()["status"] == "queued"
