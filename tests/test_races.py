"""Races: concurrent create, delete, rerun and reads of one account's reports from several API processes.

The one-active rule and the report state machine hold whatever the interleaving, and no report
is left `queued` without a job. Each storm is a fixed random seed; the checks hold the recorded
answers against each other, and against the database and Redis afterwards.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import Job
from litestar.testing import AsyncTestClient

from conftest import PAUSED_QUEUE, ApiAccount, service_env, start_api, wait_until
from contactreports.app import create_app
from contactreports.config import Settings
from contactreports.jobs.queue import job_id
from contactreports.reports import reading as reports_reading
from contactreports.store.database import Database
from helpers import ALL_EMAIL, all_rows, create_report, ingest, oracle, put_campaign, wait_done
from storm import ROWS_PAGE, Call, Storm, calls_on

SEED = 20260301
ACTIVE = ("queued", "processing")
# A report's status only moves forward (queued -> processing -> done or failed) until it is re-run.
FORWARD = {"queued": 0, "processing": 1, "done": 2, "failed": 2}
# Every answer the contract allows for each operation of the storm (the requests themselves are valid).
ANSWERS = {
    "create": {202, 409},
    "rerun": {202, 404, 409},
    "delete": {204, 404},
    "get": {200, 404},
    "list": {200},
    "rows": {200, 404, 409},
    "rows-next": {200, 404, 409},
}
YEAR = {"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
SEARCHES = [
    {"email": "ann@example.com", "categories": ["email"], **YEAR},
    {
        "email": " ANN@example.com ",
        "actions": ["email.opened", "email.clicked"],
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-09-01T00:00:00Z",
        "include_archived": True,
    },
    {"email": "ann@example.com", "actions": ["campaign.profile_updated", "email.bounced"], **YEAR},
]
CAMPAIGNS = {"live": {"name": "Live", "archived": False}, "old": {"name": "Old", "archived": True}}


# --- what the answers must say about each other ---------------------------------------------------


def assert_every_answer_is_documented(calls: list[Call]) -> None:
    """No 5xx, nothing undocumented; every error is a problem body."""
    for call in calls:
        assert call.status in ANSWERS[call.op], call
        if call.status >= 400:
            assert call.content_type == "application/problem+json", call
            assert call.body["status"] == call.status, call
            assert call.body["type"] == "about:blank", call
            assert call.body["title"] and call.body["detail"], call
        if call.status == 409 and call.op in ("create", "rerun"):
            assert isinstance(call.body["active_report_id"], str), call


def assert_accepted_reports_are_queued(calls: list[Call], seeded: frozenset[str]) -> None:
    created = [call.body["id"] for call in calls if call.op == "create" and call.status == 202]
    assert len(set(created)) == len(created)
    assert not set(created) & seeded
    for call in calls:
        if call.status == 202:
            assert call.location == f"/api/reports/{call.body['id']}", call
            assert (call.body["status"], call.body["attempts"], call.body["row_count"]) == ("queued", 0, None), call
            assert call.body["progress"] == {"scanned": 0, "total": None, "percent": 0.0}, call
            assert call.op == "create" or call.body["id"] == call.target, call


def assert_conflicts_name_a_report_that_was_active(calls: list[Call]) -> None:
    """A 409 names a report that a call begun before the 409 ended had activated (created or re-run),
    and that no call ended before the 409 began had deleted."""
    activated: dict[str, list[Call]] = {}
    for call in calls:
        if call.status == 202:
            activated.setdefault(call.body["id"], []).append(call)
    deleted = {call.target: call for call in calls if call.op == "delete" and call.status == 204}
    for call in calls:
        if call.status == 409 and call.op in ("create", "rerun"):
            named = call.body["active_report_id"]
            assert any(activation.started < call.ended for activation in activated.get(named, [])), call
            assert named not in deleted or deleted[named].ended > call.started, call


def assert_deleted_reports_stay_gone(calls: list[Call]) -> None:
    """One 204 per report; every call on it, or list, begun after that 204 ended finds it gone."""
    deletions = [call for call in calls if call.op == "delete" and call.status == 204]
    assert len({deletion.target for deletion in deletions}) == len(deletions)
    for deletion in deletions:
        later = [call for call in calls_on(calls, deletion.target) if call.started > deletion.ended]
        assert all(call.status == 404 for call in later), (deletion, later)
        lists = [call for call in calls if call.op == "list" and call.started > deletion.ended]
        assert all(deletion.target not in {item["id"] for item in call.body["items"]} for call in lists), deletion


def assert_every_list_shows_at_most_one_active(calls: list[Call], reports: frozenset[str]) -> None:
    """Each list is one snapshot of the database: it never shows two active reports, nor an unknown one."""
    for call in calls:
        if call.op == "list":
            items = call.body["items"]
            assert sum(item["status"] in ACTIVE for item in items) <= 1, call
            assert {item["id"] for item in items} <= reports, call


def reads(calls: list[Call]) -> list[tuple[Call, dict]]:
    """Every report as some answer showed it (a GET, a list item), with the call that showed it."""
    shown = [(call, call.body) for call in calls if call.op == "get" and call.status == 200]
    shown += [(call, item) for call in calls if call.op == "list" for item in call.body["items"]]
    return shown


def assert_every_report_shown_is_coherent(calls: list[Call]) -> None:
    """Times, row count and error say the same as the status."""
    for call, report in reads(calls):
        status = report["status"]
        assert (report["started_at"] is None) == (status == "queued"), (call, report)
        assert (report["finished_at"] is not None) == (status in ("done", "failed")), (call, report)
        assert (report["row_count"] is not None) == (status == "done"), (call, report)
        assert (report["error"] is not None) == (status == "failed"), (call, report)


def assert_reports_only_move_forward_between_reruns(calls: list[Call]) -> None:
    """The state machine: seen twice, one read over before the other began and no rerun (202) that
    could have landed in between, a report went only queued -> processing -> done or failed."""
    reruns = [call for call in calls if call.op == "rerun" and call.status == 202]
    seen: dict[str, list[tuple[Call, str]]] = {}
    for call, report in reads(calls):
        seen.setdefault(report["id"], []).append((call, report["status"]))
    for report_id, sightings in seen.items():
        for (first, before), (then, after) in itertools.permutations(sightings, 2):
            rerun_between = any(
                rerun.target == report_id and rerun.started < then.ended and rerun.ended > first.started
                for rerun in reruns
            )
            if first.ended < then.started and not rerun_between:
                assert FORWARD[before] <= FORWARD[after], (report_id, before, after, first, then)
                assert before not in ("done", "failed") or after == before, (report_id, before, after, first, then)


def assert_the_answers_agree(calls: list[Call], storm: Storm) -> None:
    assert_every_answer_is_documented(calls)
    assert_accepted_reports_are_queued(calls, storm.seeded)
    assert_conflicts_name_a_report_that_was_active(calls)
    assert_deleted_reports_stay_gone(calls)
    assert_every_list_shows_at_most_one_active(calls, storm.seeded | storm.search_of.keys())
    assert_every_report_shown_is_coherent(calls)
    assert_reports_only_move_forward_between_reruns(calls)


# --- what the database and Redis must say afterwards -----------------------------------------------


async def assert_the_database_agrees_with_the_answers(db: Database, account_id: int, storm: Storm) -> None:
    """The reports are those seeded or created (202) and not deleted (204); each went through
    one run more than it was re-run (202); at most one is active."""
    rows = [
        (row["id"], row["run"], row["status"])
        for row in await db.fetch(
            "SELECT id, run, status FROM reports WHERE account_id = :account_id", {"account_id": account_id}
        )
    ]
    created = {call.body["id"] for call in storm.calls if call.op == "create" and call.status == 202}
    deleted = {call.target for call in storm.calls if call.op == "delete" and call.status == 204}
    reruns = Counter(call.target for call in storm.calls if call.op == "rerun" and call.status == 202)
    assert {report_id for report_id, _, _ in rows} == (storm.seeded | created) - deleted
    assert {report_id: run for report_id, run, _ in rows} == {
        report_id: 1 + reruns[report_id] for report_id, _, _ in rows
    }
    assert sum(status in ACTIVE for _, _, status in rows) <= 1


async def queued_runs(db: Database, account_id: int) -> set[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT id, run FROM reports WHERE account_id = :account_id AND status = 'queued'", {"account_id": account_id}
    )
    return {(row["id"], row["run"]) for row in rows}


async def job_is_waiting(redis: ArqRedis, report_id: str, run: int) -> bool:
    """The run's arq job exists and waits in a queue, or a worker has taken it (not yet claimed)."""
    job = job_id(report_id, run)
    if not await redis.exists(job_key_prefix + job):
        return False
    for queue in (PAUSED_QUEUE, Settings().queue_name):
        if await redis.zscore(queue, job) is not None:
            return True
    return bool(await redis.exists(in_progress_key_prefix + job))


async def assert_every_queued_report_has_its_job(db: Database, redis: ArqRedis, account_id: int) -> None:
    for report_id, run in await queued_runs(db, account_id):
        if not await job_is_waiting(redis, report_id, run):
            # A worker may have taken and finished it between the two reads: orphaned only if still queued.
            assert (report_id, run) not in await queued_runs(db, account_id), f"{report_id} run {run} has no job"


def accepted_runs(storm: Storm) -> list[tuple[str, int]]:
    """(report, run) of every run a 202 accepted: run 1 of each report created, one more per rerun."""
    reruns = Counter(call.target for call in storm.calls if call.op == "rerun" and call.status == 202)
    runs = [(report_id, 1) for report_id in storm.search_of]
    return runs + [(report_id, 1 + n) for report_id, count in reruns.items() for n in range(1, count + 1)]


async def assert_every_accepted_run_was_enqueued(redis: ArqRedis, storm: Storm) -> None:
    """The API enqueues a run's job before it answers 202: the job still waits, or a worker took or
    ran it (its result is kept a minute). Deleting a report leaves its job, to stop when it runs."""
    for report_id, run in accepted_runs(storm):
        job = job_id(report_id, run)
        keys = (job_key_prefix + job, in_progress_key_prefix + job, result_key_prefix + job)
        assert await redis.exists(*keys), f"{report_id} run {run} was accepted but never enqueued"


async def assert_only_finished_runs_were_rerun(redis: ArqRedis, storm: Storm) -> None:
    """The state machine: a rerun (202) follows a finished run, one seeded done or one a worker ended
    done or failed (arq keeps its result a minute); a queued or processing report answers 409."""
    for report_id, run in accepted_runs(storm):
        if run > 1 and not (run == 2 and report_id in storm.seeded):
            ended = await Job(job_id(report_id, run - 1), redis).result_info()
            assert ended is not None and ended.success, f"{report_id} run {run}: run {run - 1} never ended"
            assert ended.result.startswith("done") or ended.result == "failed", (report_id, run, ended.result)


async def assert_the_database_is_intact(db: Database) -> None:
    if db.dialect.name == "sqlite":  # SQLite's own check of its file; PostgreSQL has none such
        assert await db.fetch_value("PRAGMA integrity_check") == "ok"
    orphans = await db.fetch_value("SELECT count(*) FROM report_rows WHERE report_pk NOT IN (SELECT pk FROM reports)")
    assert orphans == 0


async def assert_deleted_reports_are_404(apis: list[str], account: ApiAccount, calls: list[Call]) -> None:
    deleted = [call.target for call in calls if call.op == "delete" and call.status == 204]
    for url in apis:
        async with httpx.AsyncClient(base_url=url, headers=account.headers) as http:
            for report_id in deleted:
                assert (await http.get(f"/api/reports/{report_id}")).status_code == 404


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[ArqRedis]:
    client = ArqRedis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="module")
def worker_apis(api: str, database_url: str, redis_url: str, logs: Path) -> Iterator[list[str]]:
    """The session API and one more process of our own, on the default queue: the session worker takes their jobs."""
    process, url = start_api(service_env(database_url, redis_url), logs, "race-api")
    yield [api, url]
    process.stop()


async def done_reports(api: str, account: ApiAccount, count: int) -> list[str]:
    """Reports finished by the real worker, so a storm on paused APIs has some to re-run."""
    async with httpx.AsyncClient(base_url=api, headers=account.headers, timeout=30) as http:
        return [(await wait_done(http, (await create_report(http, **SEARCHES[0]))["id"]))["id"] for _ in range(count)]


def events(count: int) -> list[dict]:
    """Ann's year, in every spelling of her address, with and without campaigns; some ids sent twice."""
    rng = random.Random(SEED)
    actions = [*ALL_EMAIL, "campaign.profile_updated"]
    return [
        {
            "id": f"e{rng.randrange(count)}",
            "email": rng.choice(["ann@example.com", " Ann@Example.com", "ANN@EXAMPLE.COM", "bob@example.com"]),
            "action": rng.choice(actions),
            "occurred_at": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z",
            "campaign_id": rng.choice([None, "live", "old"]),
            "details": {"n": n},
        }
        for n in range(count)
    ]


def expected_rows(all_events: list[dict]) -> list[list[dict]]:
    """The oracle's rows for each search, its categories written out."""
    return [
        oracle(
            all_events,
            CAMPAIGNS,
            email=search["email"],
            actions=search.get("actions") or ALL_EMAIL,
            start=search["start"],
            end=search["end"],
            include_archived=search.get("include_archived", False),
        )
        for search in SEARCHES
    ]


# --- the storms ----------------------------------------------------------------------------------


async def test_a_storm_on_paused_apis_keeps_one_active_report_and_a_job_for_each_queued_one(
    paused_apis: list[str], api: str, account: ApiAccount, db: Database, redis: ArqRedis
) -> None:
    """No worker reads the paused queue, so reports stay queued until deleted. (The session worker's
    reconciler may still enqueue one on its own queue in the instant between a paused API's commit
    and its enqueue: every queued report is the worker's to take. The checks hold either way.)"""
    storm = Storm(
        paused_apis,
        account.headers,
        SEARCHES,
        weights={"create": 30, "rerun": 25, "delete": 15, "get": 20, "list": 10},
        seed=SEED,
        known=await done_reports(api, account, 6),
    )

    calls = await storm.run(clients=24, calls_per_client=20, seconds=20)

    assert len(calls) == 24 * 20
    assert_the_answers_agree(calls, storm)
    await assert_the_database_agrees_with_the_answers(db, account.id, storm)
    await assert_every_queued_report_has_its_job(db, redis, account.id)
    await assert_every_accepted_run_was_enqueued(redis, storm)
    await assert_only_finished_runs_were_rerun(redis, storm)
    await assert_deleted_reports_are_404(paused_apis, account, calls)
    await assert_the_database_is_intact(db)


async def test_a_storm_with_a_worker_ends_with_every_surviving_report_done_and_exact(
    worker_apis: list[str], account: ApiAccount, db: Database, redis: ArqRedis
) -> None:
    all_events = events(400)
    expected = expected_rows(all_events)
    async with httpx.AsyncClient(base_url=worker_apis[0], headers=account.headers, timeout=30) as http:
        for campaign_id, campaign in CAMPAIGNS.items():
            await put_campaign(http, campaign_id, campaign["name"], archived=campaign["archived"])
        await ingest(http, all_events)
    storm = Storm(
        worker_apis,
        account.headers,
        SEARCHES,
        weights={"create": 25, "rerun": 25, "delete": 10, "get": 15, "list": 5, "rows": 20},
        seed=SEED + 1,
    )

    calls = await storm.run(clients=24, calls_per_client=16, seconds=20)

    assert len(calls) >= 24 * 16
    assert_the_answers_agree(calls, storm)
    assert_reads_show_the_oracles_rows(calls, storm, expected)
    await assert_every_accepted_run_was_enqueued(redis, storm)
    await assert_only_finished_runs_were_rerun(redis, storm)

    async def nothing_active() -> bool:
        active = await db.fetch_value(
            "SELECT count(*) FROM reports WHERE account_id = :account_id AND status IN ('queued', 'processing')",
            {"account_id": account.id},
        )
        return active == 0

    await wait_until(nothing_active)
    await assert_the_database_agrees_with_the_answers(db, account.id, storm)
    await assert_surviving_reports_are_done_and_exact(worker_apis[1], account, storm, expected)
    await assert_deleted_reports_are_404(worker_apis, account, calls)
    await assert_the_database_is_intact(db)


def assert_reads_show_the_oracles_rows(calls: list[Call], storm: Storm, expected: list[list[dict]]) -> None:
    """A done report, and every page of rows read during the storm, is the oracle's (the events never changed)."""
    for call in calls:
        if call.status != 200 or call.target is None:
            continue
        rows = expected[storm.search_of[call.target]]
        if call.op == "get" and call.body["status"] == "done":
            assert (call.body["row_count"], call.body["progress"]["percent"]) == (len(rows), 100.0), call
        elif call.op == "rows":
            assert call.body["items"] == rows[:ROWS_PAGE], call
            assert (call.body["next_cursor"] is not None) == (len(rows) > ROWS_PAGE), call
        elif call.op == "rows-next":
            assert call.body["items"] == rows[ROWS_PAGE : 2 * ROWS_PAGE], call


async def assert_surviving_reports_are_done_and_exact(
    api: str, account: ApiAccount, storm: Storm, expected: list[list[dict]]
) -> None:
    deleted = {call.target for call in storm.calls if call.op == "delete" and call.status == 204}
    surviving = storm.search_of.keys() - deleted
    assert surviving
    async with httpx.AsyncClient(base_url=api, headers=account.headers, timeout=30) as http:
        for report_id in surviving:
            rows = expected[storm.search_of[report_id]]
            report = (await http.get(f"/api/reports/{report_id}")).json()
            assert (report["status"], report["row_count"], report["error"]) == ("done", len(rows), None)
            assert await all_rows(http, report_id) == rows


# --- rows read while another process re-runs or deletes the report ----------------------------------


async def done_report_with_rows(client: httpx.AsyncClient, count: int) -> dict:
    opened = [
        {
            "email": "ann@example.com",
            "action": "email.opened",
            "occurred_at": f"2026-03-01T00:{n // 60:02d}:{n % 60:02d}Z",
        }
        for n in range(count)
    ]
    await ingest(client, opened)
    return await wait_done(client, (await create_report(client, **SEARCHES[0]))["id"])


async def test_a_rows_cursor_given_before_a_rerun_is_a_409_not_a_tampered_cursor(client: httpx.AsyncClient) -> None:
    report = await done_report_with_rows(client, 30)
    first = (await client.get(f"/api/reports/{report['id']}/rows", params={"limit": 10})).json()
    assert (await client.post(f"/api/reports/{report['id']}/rerun")).status_code == 202
    assert (await wait_done(client, report["id"]))["status"] == "done"

    second = await client.get(f"/api/reports/{report['id']}/rows", params={"limit": 10, "cursor": first["next_cursor"]})

    assert second.status_code == 409
    assert second.headers["content-type"] == "application/problem+json"
    assert second.json()["detail"] == (
        f"Report {report['id']} was re-run since this cursor was given; read its rows again from the first page."
    )
    # A cursor of the new run pages on as before.
    again = (await client.get(f"/api/reports/{report['id']}/rows", params={"limit": 10})).json()
    assert again["items"] == first["items"]
    following = await client.get(
        f"/api/reports/{report['id']}/rows", params={"limit": 10, "cursor": again["next_cursor"]}
    )
    assert following.status_code == 200
    assert len(following.json()["items"]) == 10


CHANGES = {"rerun": ("POST", "/api/reports/{id}/rerun"), "delete": ("DELETE", "/api/reports/{id}")}


@pytest.mark.parametrize(
    ("change", "status", "detail"),
    [
        ("rerun", 409, "Report {id} was re-run while its rows were read; read them again once it is done."),
        ("delete", 404, "No such report."),
    ],
)
async def test_rows_read_while_another_process_reruns_or_deletes_the_report_are_not_an_empty_page(
    client: httpx.AsyncClient,
    api: str,
    account: ApiAccount,
    database_url: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    status: int,
    detail: str,
) -> None:
    """The rows handler reads the report (done), then its rows: a rerun or delete committed by another
    API process in between used to give `200 {"items": [], "next_cursor": null}`, a done report that
    looks empty. The in-process app below makes that interleaving happen every time."""
    report = await done_report_with_rows(client, 30)
    method, path = CHANGES[change]
    other_process = httpx.Request(method, f"{api}{path.format(id=report['id'])}", headers=account.headers)
    monkeypatch.setattr(reports_reading, "page_rows", _after(other_process, reports_reading.page_rows))
    app = create_app(Settings(database_url=database_url, redis_url=redis_url))

    async with AsyncTestClient(app, timeout=30) as http:
        response = await http.get(f"/api/reports/{report['id']}/rows", headers=account.headers)

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == detail.format(id=report["id"])


def _after(change: httpx.Request, page_rows: Callable) -> Callable:
    """page_rows, once another API process has carried out `change`: the race made certain.

    (The app runs on an event loop of its own, so the request goes out on a client of its own.)
    """

    async def changed_first(*args, **kwargs):
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await http.send(change)).status_code in (202, 204)
        return await page_rows(*args, **kwargs)

    return changed_first
