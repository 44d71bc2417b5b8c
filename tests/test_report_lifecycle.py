"""Creating, listing, deleting and re-running reports; one active report per account."""

from __future__ import annotations

import asyncio
import random

import httpx
from arq.connections import ArqRedis
from arq.jobs import Job

from conftest import DEADLINE_SECONDS, wait_until
from contactreports.config import Settings
from contactreports.jobs.queue import job_id
from contactreports.store.database import Database
from helpers import all_rows, create_report, ingest, wait_done

SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


def opened(minute: int, email: str = "ann@example.com") -> dict:
    return {"email": email, "action": "email.opened", "occurred_at": f"2026-05-01T10:{minute:02d}:00Z"}


async def test_a_second_report_while_one_is_queued_is_409_naming_it(paused_client: httpx.AsyncClient) -> None:
    first = await create_report(paused_client, **SEARCH)

    second = await paused_client.post("/api/reports", json=SEARCH)

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    body = second.json()
    assert body["status"] == 409
    assert body["title"] == "Conflict"
    assert body["active_report_id"] == first["id"]
    assert first["id"] in body["detail"]
    rerun = await paused_client.post(f"/api/reports/{first['id']}/rerun")
    assert rerun.status_code == 409
    assert rerun.json()["active_report_id"] == first["id"]


async def test_thirty_concurrent_creates_across_two_api_processes_give_one_202(paused_apis: list[str], account) -> None:
    clients = [httpx.AsyncClient(base_url=url, headers=account.headers, timeout=30) for url in paused_apis]
    try:
        responses = await asyncio.gather(*(clients[n % 2].post("/api/reports", json=SEARCH) for n in range(30)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] + [409] * 29
    created = next(r.json()["id"] for r in responses if r.status_code == 202)
    assert {r.json()["active_report_id"] for r in responses if r.status_code == 409} == {created}


async def test_a_queued_report_has_no_rows_yet(paused_client: httpx.AsyncClient) -> None:
    report = await create_report(paused_client, **SEARCH)

    assert report["status"] == "queued"
    assert report["progress"] == {"scanned": 0, "total": None, "percent": 0.0}
    assert (report["row_count"], report["error"], report["attempts"]) == (None, None, 0)
    assert (report["started_at"], report["finished_at"]) == (None, None)
    rows = await paused_client.get(f"/api/reports/{report['id']}/rows")
    assert rows.status_code == 409
    assert rows.json()["detail"] == f"Report {report['id']} is queued; its rows are ready once it is done."


async def test_deleting_a_queued_report_frees_the_account_at_once(paused_client: httpx.AsyncClient) -> None:
    report = await create_report(paused_client, **SEARCH)

    deleted = await paused_client.delete(f"/api/reports/{report['id']}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await paused_client.get(f"/api/reports/{report['id']}")).status_code == 404
    assert (await paused_client.delete(f"/api/reports/{report['id']}")).status_code == 404
    await create_report(paused_client, **SEARCH)


async def test_deleting_a_running_report_stops_its_job_and_removes_its_rows(
    client: httpx.AsyncClient, db: Database, account, redis_url: str
) -> None:
    # 40,000 events copied 100 a chunk (the test worker's setting): long enough to catch it processing.
    events = [
        opened(0) | {"occurred_at": f"2026-05-{1 + n % 28:02d}T{n % 24:02d}:{n % 60:02d}:{n // 1440 % 60:02d}Z"}
        for n in range(40_000)
    ]
    for start in range(0, len(events), 10_000):
        await ingest(client, events[start : start + 10_000])
    redis = ArqRedis.from_url(redis_url)
    try:
        # A delete can land just as the last chunk finishes; then try again: only a job seen to
        # stop mid-run passes.
        results = [await _delete_while_running(client, redis) for _ in range(3)]
    finally:
        await redis.aclose()
    assert "stale" in results, results

    leftover = await db.fetch_value(
        "SELECT count(*) FROM report_rows r JOIN reports p ON p.pk = r.report_pk WHERE p.account_id = :account_id",
        {"account_id": account.id},
    )
    orphans = await db.fetch_value("SELECT count(*) FROM report_rows WHERE report_pk NOT IN (SELECT pk FROM reports)")
    assert leftover == 0
    assert orphans == 0
    # The worker moved on: the next report runs to the end.
    follow_up = await wait_done(
        client, (await create_report(client, **{**SEARCH, "end": "2026-05-02T00:00:00Z"}))["id"]
    )
    assert follow_up["status"] == "done"
    assert follow_up["row_count"] == sum(1 for e in events if e["occurred_at"] < "2026-05-02")


async def _delete_while_running(client: httpx.AsyncClient, redis: ArqRedis) -> str:
    """Delete a report once its job has copied some rows; returns the job's own result."""
    report = await create_report(client, **SEARCH)

    async def processing() -> bool:
        body = (await client.get(f"/api/reports/{report['id']}")).json()
        return body["status"] == "done" or (body["status"] == "processing" and body["progress"]["scanned"] > 0)

    await wait_until(processing)
    assert (await client.delete(f"/api/reports/{report['id']}")).status_code == 204
    job = Job(job_id(report["id"], 1), redis, _queue_name=Settings().queue_name)
    return await job.result(timeout=DEADLINE_SECONDS, poll_delay=0.05)


async def test_rerun_recomputes_the_same_report_from_the_events_as_they_are_now(client: httpx.AsyncClient) -> None:
    await ingest(client, [opened(1), opened(2)])
    report = await wait_done(client, (await create_report(client, **SEARCH))["id"])
    assert report["row_count"] == 2
    await ingest(client, [opened(3), opened(0)])

    rerun = await client.post(f"/api/reports/{report['id']}/rerun")

    assert rerun.status_code == 202
    assert rerun.headers["location"] == f"/api/reports/{report['id']}"
    assert rerun.json()["status"] == "queued"
    assert rerun.json()["attempts"] == 0
    assert rerun.json()["row_count"] is None
    again = await wait_done(client, report["id"])
    assert again["status"] == "done"
    assert again["attempts"] == 1
    assert again["row_count"] == 4
    assert [row["occurred_at"] for row in await all_rows(client, report["id"])] == [
        "2026-05-01T10:00:00.000Z",
        "2026-05-01T10:01:00.000Z",
        "2026-05-01T10:02:00.000Z",
        "2026-05-01T10:03:00.000Z",
    ]


async def test_rerun_of_an_unknown_report_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/reports/no-such-report/rerun")
    assert response.status_code == 404
    assert response.json()["detail"] == "No such report."


async def test_reports_are_listed_newest_first_with_a_status_filter(client: httpx.AsyncClient) -> None:
    ids = []
    for _ in range(3):
        ids.append((await wait_done(client, (await create_report(client, **SEARCH))["id"]))["id"])

    listed, cursor = [], None
    while True:
        page = (await client.get("/api/reports", params={"limit": 2, **({"cursor": cursor} if cursor else {})})).json()
        listed += [item["id"] for item in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert listed == ids[::-1]
    done = (await client.get("/api/reports", params={"status": "done"})).json()
    assert [item["id"] for item in done["items"]] == ids[::-1]
    queued = (await client.get("/api/reports", params={"status": "queued"})).json()
    assert queued == {"items": [], "next_cursor": None}
    bad = await client.get("/api/reports", params={"status": "lost"})
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "status"


async def test_progress_moves_up_honestly_while_a_report_runs(client: httpx.AsyncClient) -> None:
    # 40,000 events copied 100 a chunk (the test worker's setting): many progress steps to watch.
    days = random.Random(1).sample(range(1, 29), 28)
    for batch in range(4):
        await ingest(
            client,
            [
                opened(0) | {"occurred_at": f"2026-06-{days[n % 28]:02d}T{n % 24:02d}:{n % 60:02d}:{batch:02d}Z"}
                for n in range(10_000)
            ],
        )
    report = await create_report(client, **SEARCH)
    seen = []

    async def done() -> bool:
        body = (await client.get(f"/api/reports/{report['id']}")).json()
        seen.append((body["status"], body["progress"]))
        return body["status"] == "done"

    await wait_until(done)
    percents = [progress["percent"] for _, progress in seen]
    assert percents == sorted(percents)
    assert any(0 < percent < 100 for percent in percents), seen
    assert all(p["scanned"] <= p["total"] for status, p in seen if status == "processing")
    assert all(p["total"] == 40_000 for status, p in seen if status == "processing")
    assert seen[-1][1] == {"scanned": 40_000, "total": 40_000, "percent": 100.0}
