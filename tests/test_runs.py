"""A run in the worker's hands: resuming, ownership, archived campaigns moving mid-run, giving up."""

from __future__ import annotations

import httpx
import pytest

from conftest import ApiAccount
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.models import Summary
from contactreports.store.database import Database
from contactreports.store.rows import ReportChanged, page_rows, report_summary, stream_rows
from contactreports.store.runs import StaleRun, claim_run, copy_chunk
from helpers import all_rows, create_report, ingest, oracle, put_campaign, stored_report

START, END = "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"
SEARCH = {"email": "ann@example.com", "categories": ["email"], "start": START, "end": END}


def events(count: int, campaign_id: str | None = None, email: str = "ann@example.com") -> list[dict]:
    return [
        {
            "email": email,
            "action": "email.opened",
            "occurred_at": f"2026-07-{1 + n % 28:02d}T{n % 24:02d}:00:00Z",
            "campaign_id": campaign_id,
            "details": {"n": n},
        }
        for n in range(count)
    ]


def context(db: Database, database_url: str, chunk_rows: int = 10) -> dict:
    return job_context(Settings(database_url=database_url, chunk_rows=chunk_rows), db)


async def test_a_run_interrupted_after_some_chunks_resumes_without_gaps_or_duplicates(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    sent = events(95)
    await ingest(paused_client, sent)
    report = await create_report(paused_client, **SEARCH)
    first = await claim_run(db, account.id, report["id"], 1)
    assert first is not None
    for _ in range(3):  # three chunks of 10 committed, then the worker "dies"
        assert await copy_chunk(db, first, 10) == 10
    progress = (await paused_client.get(f"/api/reports/{report['id']}")).json()["progress"]
    assert progress == {"scanned": 30, "total": 95, "percent": 31.6}

    assert await generate_report(context(db, database_url), account.id, report["id"], 1) == "done: 95 rows"

    assert await all_rows(paused_client, report["id"]) == oracle(
        sent, {}, email="ann@example.com", actions=["email.opened"], start=START, end=END
    )
    body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
    assert (body["row_count"], body["progress"]["scanned"], body["attempts"]) == (95, 95, 2)
    with pytest.raises(StaleRun):  # the first attempt, were it alive after all, may not write
        await copy_chunk(db, first, 10)


async def test_a_stale_job_of_a_deleted_report_cannot_write_into_a_newer_one(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    await ingest(paused_client, events(20) + events(5, email="bob@example.com"))
    deleted = await create_report(paused_client, **SEARCH)
    stale = await claim_run(db, account.id, deleted["id"], 1)
    assert (await paused_client.delete(f"/api/reports/{deleted['id']}")).status_code == 204
    newer = await create_report(paused_client, **{**SEARCH, "email": "bob@example.com"})
    assert await generate_report(context(db, database_url), account.id, newer["id"], 1) == "done: 5 rows"

    with pytest.raises(StaleRun):
        await copy_chunk(db, stale, 10)

    assert (await stored_report(db, newer["id"])).pk != stale.report_pk
    assert [row["details"]["n"] for row in await all_rows(paused_client, newer["id"])] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("archive_mid_run", [True, False])
async def test_a_campaign_archived_or_restored_mid_run_leaves_the_archived_search_exact(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str, archive_mid_run: bool
) -> None:
    await put_campaign(paused_client, "spring", "Spring", archived=not archive_mid_run)
    sent = events(30, campaign_id="spring") + events(30)
    await ingest(paused_client, sent)
    report = await create_report(paused_client, **SEARCH, include_archived=True)
    claim = await claim_run(db, account.id, report["id"], 1)
    assert await copy_chunk(db, claim, 10) == 10

    await put_campaign(paused_client, "spring", "Spring", archived=archive_mid_run)
    while await copy_chunk(db, claim, 10) == 10:
        pass

    assert claim.scanned == 60
    body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
    assert (body["status"], body["row_count"]) == ("done", 60)
    campaigns = {"spring": {"name": "Spring", "archived": archive_mid_run}}
    assert await all_rows(paused_client, report["id"]) == oracle(
        sent, campaigns, email="ann@example.com", actions=["email.opened"], start=START, end=END, include_archived=True
    )


async def test_a_run_that_keeps_dying_fails_with_a_reason_and_frees_the_account(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    await ingest(paused_client, events(5))
    report = await create_report(paused_client, **SEARCH)
    for _ in range(3):  # three workers claimed it and died
        assert await claim_run(db, account.id, report["id"], 1) is not None

    assert await generate_report(context(db, database_url), account.id, report["id"], 1) == "failed"

    body = (await paused_client.get(f"/api/reports/{report['id']}")).json()
    assert (body["status"], body["error"], body["attempts"]) == ("failed", "gave up after 3 attempts", 4)
    assert (await paused_client.get(f"/api/reports/{report['id']}/rows")).status_code == 409
    assert (await paused_client.post(f"/api/reports/{report['id']}/rerun")).status_code == 202


async def test_reading_rows_stops_when_the_report_is_rerun_part_way(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    await ingest(paused_client, events(1_500))
    report = await create_report(paused_client, **SEARCH)
    assert (
        await generate_report(context(db, database_url, chunk_rows=500), account.id, report["id"], 1)
        == "done: 1500 rows"
    )
    done = await stored_report(db, report["id"])
    chunks = stream_rows(db, done)
    assert len(await anext(chunks)) == 1_000

    assert (await paused_client.post(f"/api/reports/{report['id']}/rerun")).status_code == 202

    with pytest.raises(ReportChanged):
        await anext(chunks)
    assert await page_rows(db, done, (), None, 10) == []


async def test_a_done_runs_summary_is_kept_at_first_view_and_made_anew_for_a_rerun(
    paused_client: httpx.AsyncClient, account: ApiAccount, db: Database, database_url: str
) -> None:
    def event(action: str, at: str) -> dict:
        return {"email": "ann@example.com", "action": action, "occurred_at": at}

    async def kept_runs() -> list[int]:
        rows = await db.fetch("SELECT run FROM report_summaries WHERE report_pk = :pk ORDER BY run", {"pk": pk})
        return [row["run"] for row in rows]

    opened, clicked = "email.opened", "email.clicked"
    july = [event(opened, "2026-07-01T00:00:00Z"), event(clicked, "2026-07-01T12:00:00Z")]
    july += [event(opened, f"2026-07-0{day}T00:00:00Z") for day in (2, 3, 4)]
    await ingest(paused_client, july)
    report = await create_report(paused_client, **SEARCH)
    await generate_report(context(db, database_url), account.id, report["id"], 1)
    done = await stored_report(db, report["id"])
    pk = done.pk

    # Three equal slices of 07-01 00:00 .. 07-04 00:00: the first day and a half, the third day, the fourth.
    first, last = 1782864000000, 1783123200000
    assert await report_summary(db, done, 3) == Summary({opened: 4, clicked: 1}, first, last, [3, 1, 1])
    assert await kept_runs() == [1]
    # A second view reads what was kept (altered here to tell it apart); another bar count is made anew.
    async with db.transaction() as conn:
        await conn.execute("UPDATE report_summaries SET summary = replace(summary, '[3,1,1]', '[9,9,9]')")
    assert (await report_summary(db, done, 3)).activity == [9, 9, 9]
    assert (await report_summary(db, done, 2)).activity == [3, 2]

    await ingest(paused_client, [event(clicked, "2026-07-04T00:00:00Z")])
    assert (await paused_client.post(f"/api/reports/{report['id']}/rerun")).status_code == 202
    await generate_report(context(db, database_url), account.id, report["id"], 2)
    rerun = await stored_report(db, report["id"])
    assert await report_summary(db, rerun, 3) == Summary({opened: 4, clicked: 2}, first, last, [3, 1, 2])
    assert await kept_runs() == [2]

    assert (await paused_client.delete(f"/api/reports/{report['id']}")).status_code == 204
    assert await kept_runs() == []
