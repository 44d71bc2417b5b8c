"""What every store backend guarantees, run on each: SQLite and PostgreSQL.

Each invariant is pinned where it matters, under writers at once: on PostgreSQL they really run
at the same time (a pool of connections, READ COMMITTED); on SQLite one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from conftest import BACKENDS
from contactreports.catalogue import ACTION_CODES
from contactreports.models import Campaign, NewEvent, ReportSpec
from contactreports.store import accounts, campaigns, events, reports, rows, runs
from contactreports.store.database import Database
from contactreports.store.reports import ActiveReportExists
from contactreports.store.runs import StaleRun

DAY_MS = 86_400_000
ANN = "ann@example.com"
WINDOW = (0, 400 * DAY_MS)


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Database]:
    db = await Database.open(store_url)
    yield db
    await db.close()


@pytest.fixture
async def account_id(store: Database) -> int:
    account, _ = await accounts.create_account(store, "Acme")
    return account.id


def spec(actions: tuple[str, ...] = ("email.opened",), archived: bool = False) -> ReportSpec:
    return ReportSpec(ANN, actions, *WINDOW, archived)


def opened(event_id: str | None, day: int, campaign_id: str | None = None, email: str = ANN) -> NewEvent:
    return NewEvent(event_id, email, ACTION_CODES["email.opened"], day * DAY_MS, campaign_id, None)


async def at_once(*work: Callable[[], Awaitable[object]]) -> list[object]:
    """Run the calls at the same time; their results or the exceptions they raised, in order."""
    return await asyncio.gather(*(call() for call in work), return_exceptions=True)


async def run_to_done(db: Database, report: reports.Report) -> None:
    claim = await runs.claim_run(db, report.account_id, report.id, report.run)
    assert claim is not None
    while await runs.copy_chunk(db, claim, 2) == 2:
        pass


async def test_migrations_apply_once_when_processes_open_a_new_store_at_once(store_url: str) -> None:
    opened_ = await asyncio.gather(*(Database.open(store_url) for _ in range(4)))
    try:
        applied = await opened_[0].fetch("SELECT version, count(*) AS times FROM schema_migrations GROUP BY version")
    finally:
        await asyncio.gather(*(db.close() for db in opened_))

    assert applied and all(row["times"] == 1 for row in applied)
    assert max(row["version"] for row in applied) >= 7


async def test_an_account_has_one_active_report_even_when_two_are_created_at_once(
    store: Database, account_id: int
) -> None:
    results = await at_once(*[lambda: reports.create_report(store, account_id, spec())] * 4)

    created = [result for result in results if isinstance(result, reports.Report)]
    refused = [result for result in results if not isinstance(result, reports.Report)]
    assert len(created) == 1
    assert [type(error) for error in refused] == [ActiveReportExists] * 3
    assert {error.active_report_id for error in refused} == {created[0].id}


async def test_a_rerun_is_refused_while_another_report_of_the_account_is_active(
    store: Database, account_id: int
) -> None:
    first = await reports.create_report(store, account_id, spec())
    await run_to_done(store, first)
    second = await reports.create_report(store, account_id, spec())

    with pytest.raises(ActiveReportExists) as refused:
        await reports.rerun_report(store, account_id, first.id)

    assert refused.value.active_report_id == second.id
    assert (await reports.get_report(store, account_id, first.id)).status == "done"


async def test_an_event_id_is_stored_once_when_batches_carrying_it_arrive_at_once(
    store: Database, account_id: int
) -> None:
    batch = [opened(f"id-{n}", n % 300) for n in range(200)]

    results = await at_once(*[lambda: events.insert_events(store, account_id, batch)] * 4)

    assert sorted(results) == [(0, 200)] * 3 + [(200, 0)]
    assert await store.fetch_value("SELECT count(*) FROM events WHERE account_id = :a", {"a": account_id}) == 200


async def test_a_batch_keeps_the_first_of_each_event_id_and_every_event_without_one(
    store: Database, account_id: int
) -> None:
    batch = [opened("a", 1), opened(None, 2), opened("a", 3), opened(None, 4), opened("b", 5)]

    assert await events.insert_events(store, account_id, batch) == (4, 1)
    assert await events.insert_events(store, account_id, [opened("b", 6), opened("c", 7)]) == (1, 1)
    days = await store.fetch(
        "SELECT occurred_at FROM events WHERE account_id = :a ORDER BY occurred_at", {"a": account_id}
    )
    assert [row["occurred_at"] // DAY_MS for row in days] == [1, 2, 4, 5, 7]


async def test_events_stored_at_once_get_sequence_numbers_of_their_own(store: Database, account_id: int) -> None:
    batches = [[opened(None, day, email=f"c{n}@example.com") for day in range(50)] for n in range(4)]

    await at_once(*[lambda batch=batch: events.insert_events(store, account_id, batch) for batch in batches])

    seqs = [row["seq"] for row in await store.fetch("SELECT seq FROM events WHERE account_id = :a", {"a": account_id})]
    assert len(seqs) == len(set(seqs)) == 200
    assert min(seqs) >= 1


async def test_a_campaign_created_at_once_by_two_writers_is_new_to_exactly_one(
    store: Database, account_id: int
) -> None:
    campaign = Campaign("spring", "Spring sale", "email", None, False)

    results = await at_once(*[lambda: campaigns.put_campaign(store, account_id, campaign)] * 4)

    assert sorted(results) == [False, False, False, True]


async def test_events_ingested_while_their_campaign_is_archived_end_in_the_archived_table(
    store: Database, account_id: int
) -> None:
    await campaigns.put_campaign(store, account_id, Campaign("spring", "Spring", "email", None, False))
    archived = Campaign("spring", "Spring", "email", None, True)
    batches = [[opened(f"{n}-{day}", day, "spring") for day in range(100)] for n in range(3)]

    await at_once(
        *[lambda batch=batch: events.insert_events(store, account_id, batch) for batch in batches],
        lambda: campaigns.put_campaign(store, account_id, archived),
    )

    count = "SELECT count(*) FROM {table} WHERE account_id = :a"
    assert await store.fetch_value(count.format(table="events"), {"a": account_id}) == 0
    assert await store.fetch_value(count.format(table="archived_events"), {"a": account_id}) == 300


async def test_a_batch_is_stored_as_given_details_and_campaigns_included_archived_ones_apart(
    store: Database, account_id: int
) -> None:
    await campaigns.put_campaign(store, account_id, Campaign("live", "Live", "email", None, False))
    await campaigns.put_campaign(store, account_id, Campaign("old", "Old", "email", None, True))
    clicked = ACTION_CODES["email.clicked"]
    link = '{"url": "https://example.com/é"}'
    batch = [
        NewEvent("e1", "zed@example.com", clicked, 3 * DAY_MS, "live", link.encode()),
        NewEvent(None, ANN, ACTION_CODES["email.opened"], 1 * DAY_MS, None, None),
        NewEvent("e2", "bob@example.com", clicked, 2 * DAY_MS, "old", b'{"n": 1}'),
        NewEvent("e3", ANN, clicked, 4 * DAY_MS, "old", None),
    ]

    assert await events.insert_events(store, account_id, batch) == (4, 0)

    pks = {row["id"]: row["pk"] for row in await store.fetch("SELECT id, pk FROM campaigns")}
    read = (
        "SELECT account_id, email, occurred_at, action, campaign_pk, details FROM {table}"
        " WHERE account_id = :a ORDER BY occurred_at"
    )
    hot = [tuple(row) for row in await store.fetch(read.format(table="events"), {"a": account_id})]
    archived = [tuple(row) for row in await store.fetch(read.format(table="archived_events"), {"a": account_id})]
    assert hot == [
        (account_id, ANN, 1 * DAY_MS, ACTION_CODES["email.opened"], None, None),
        (account_id, "zed@example.com", 3 * DAY_MS, clicked, pks["live"], link),
    ]
    assert archived == [
        (account_id, "bob@example.com", 2 * DAY_MS, clicked, pks["old"], '{"n": 1}'),
        (account_id, ANN, 4 * DAY_MS, clicked, pks["old"], None),
    ]
    seqs = await store.fetch("SELECT seq FROM events UNION ALL SELECT seq FROM archived_events")
    assert len({row["seq"] for row in seqs}) == 4


async def test_only_the_latest_claim_of_a_run_may_write(store: Database, account_id: int) -> None:
    await events.insert_events(store, account_id, [opened(None, day) for day in range(5)])
    report = await reports.create_report(store, account_id, spec())
    first = await runs.claim_run(store, report.account_id, report.id, report.run)
    second = await runs.claim_run(store, report.account_id, report.id, report.run)

    with pytest.raises(StaleRun):
        await runs.copy_chunk(store, first, 2)
    while await runs.copy_chunk(store, second, 2) == 2:
        pass

    done = await reports.get_report(store, account_id, report.id)
    assert (done.status, done.row_count, done.attempts) == ("done", 5, 2)


async def test_a_run_copies_the_matching_rows_in_time_order_hot_and_archived(store: Database, account_id: int) -> None:
    await campaigns.put_campaign(store, account_id, Campaign("old", "Old", "email", None, True))
    await events.insert_events(
        store,
        account_id,
        [opened(None, 3), opened(None, 1, "old"), opened(None, 2), opened(None, 4, email="bob@example.com")],
    )
    report = await reports.create_report(store, account_id, spec(archived=True))

    await run_to_done(store, report)

    done = await reports.get_report(store, account_id, report.id)
    page = await rows.page_rows(store, done, (), None, 10)
    assert [(row.occurred_at // DAY_MS, row.campaign.id if row.campaign else None) for row in page] == [
        (1, "old"),
        (2, None),
        (3, None),
    ]
    summary = await rows.report_summary(store, done, 2)
    assert (summary.counts, summary.activity) == ({"email.opened": 3}, [2, 1])


async def test_a_statement_says_how_many_rows_it_changed(store: Database, account_id: int) -> None:
    await events.insert_events(store, account_id, [opened(None, day) for day in range(3)])
    update = "UPDATE events SET details = :details WHERE account_id = :account_id AND occurred_at < :before"
    async with store.transaction() as conn:
        changed = await conn.execute(update, {"details": None, "account_id": account_id, "before": 2 * DAY_MS})
        unchanged = await conn.execute(update, {"details": None, "account_id": account_id + 1, "before": 2 * DAY_MS})

    assert (changed, unchanged) == (2, 0)


async def test_the_last_full_access_key_of_an_account_cannot_be_revoked(store: Database) -> None:
    account, _ = await accounts.create_account(store, "Acme")
    (key,) = await accounts.list_api_keys(store, account.id, None, 10)

    with pytest.raises(accounts.LastFullAccessKey):
        await accounts.revoke_api_key(store, account.id, key.id)
