"""A report run as the worker sees it: claim, copy matching events in chunks, finish.

Only the latest claimant of a run may write: every write checks the report's id, run and
lease, so a duplicated or stale job (the report was deleted, re-run or taken over)
stops without writing. Rows are visible only once the report is `done`, so a run's rows
appear all at once.
"""

from __future__ import annotations

import msgspec

from contactreports.catalogue import ACTION_CODES
from contactreports.models import ReportSpec, now_ms
from contactreports.store.database import Connection, Database, Row
from contactreports.store.reports import ITS_ROWS, REPORT_KEY, spec_from_row

# Where matching events live; a search with include_archived reads both.
HOT, ARCHIVED = "events", "archived_events"


class StaleRun(Exception):
    """The run was deleted, re-run or taken over by a newer attempt."""


class Claim(msgspec.Struct, kw_only=True):
    report_id: str
    report_pk: int
    run: int
    lease: int
    attempts: int
    account_id: int
    spec: ReportSpec
    scanned: int
    total: int
    # The last (occurred_at, seq) copied: the next chunk starts right after it.
    after: tuple[int, int]


def _key(claim: Claim) -> dict[str, int]:
    return {"account_id": claim.account_id, "pk": claim.report_pk}


async def claim_run(db: Database, account_id: int, report_id: str, run: int) -> Claim | None:
    """Take a queued (or abandoned processing) run; None if it is stale.

    A run that was interrupted resumes where its last committed chunk ended.
    """
    now = now_ms()
    async with db.transaction() as conn:
        row = await conn.fetch_one(
            "UPDATE reports SET status = 'processing', lease = lease + 1, attempts = attempts + 1,"
            " started_at = coalesce(started_at, :now), heartbeat_at = :now"
            " WHERE account_id = :account_id AND id = :id AND run = :run AND status IN ('queued', 'processing')"
            " RETURNING pk, lease, attempts, account_id, email, actions, start_at, end_at, include_archived,"
            " scanned, total, scan_after_at, scan_after_seq",
            {"now": now, "account_id": account_id, "id": report_id, "run": run},
        )
        if row is None:
            return None
        claim = Claim(
            report_id=report_id,
            report_pk=row["pk"],
            run=run,
            lease=row["lease"],
            attempts=row["attempts"],
            account_id=row["account_id"],
            spec=spec_from_row(row),
            scanned=row["scanned"],
            total=row["total"],
            after=(row["scan_after_at"], row["scan_after_seq"]),
        )
        if row["scan_after_at"] is None:
            await _start_fresh(conn, claim)
    return claim


async def _start_fresh(conn: Connection, claim: Claim) -> None:
    """A fresh run: forget the rows of earlier runs, count what it will copy, start at the window's start."""
    await conn.execute(f"DELETE FROM report_rows WHERE {ITS_ROWS}", _key(claim))
    # (start, 0) sorts before every event at `start`: seq is never below 1.
    claim.after = (claim.spec.start, 0)
    count, count_params = _count_matching(claim.account_id, claim.spec)
    claim.total = await conn.fetch_value(
        f"UPDATE reports SET total = {count}, scan_after_at = :after_at, scan_after_seq = 0 WHERE {REPORT_KEY}"
        " RETURNING total",
        {**count_params, "after_at": claim.spec.start, **_key(claim)},
    )


async def copy_chunk(db: Database, claim: Claim, limit: int) -> int:
    """Copy up to `limit` further matching events into the report's rows; returns how many.

    Advances the resume point, progress and heartbeat in the same transaction, so a crash
    resumes exactly after the last committed chunk. A chunk short of `limit` found no more
    matching events: it is the last, and it also marks the run done, making its rows visible
    (one transaction, not one more to learn that nothing is left and another to finish).
    """
    async with db.transaction() as conn:
        await _check_owner(conn, claim)
        keys = await conn.fetch(*_copy_statement(claim, limit))
        if keys:
            claim.after = max((key["occurred_at"], key["seq"]) for key in keys)
            claim.scanned += len(keys)
        if len(keys) < limit:
            await _finish(conn, claim)
        else:
            await conn.execute(
                "UPDATE reports SET scanned = :scanned, heartbeat_at = :now, scan_after_at = :after_at,"
                f" scan_after_seq = :after_seq WHERE {REPORT_KEY}",
                {
                    "scanned": claim.scanned,
                    "now": now_ms(),
                    "after_at": claim.after[0],
                    "after_seq": claim.after[1],
                    **_key(claim),
                },
            )
    return len(keys)


async def _finish(conn: Connection, claim: Claim) -> None:
    """Mark the run done with the rows it holds, making them visible."""
    row_count = await conn.fetch_value(f"SELECT count(*) FROM report_rows WHERE {ITS_ROWS}", _key(claim))
    await conn.execute(
        "UPDATE reports SET status = 'done', row_count = :count, scanned = :count, total = :count,"
        f" finished_at = :now, heartbeat_at = NULL WHERE {REPORT_KEY}",
        {"count": row_count, "now": now_ms(), **_key(claim)},
    )
    claim.scanned = row_count


async def release_run(db: Database, claim: Claim) -> None:
    """Hand an unfinished run back to the queue: its worker is shutting down, not failing.

    The attempt is not counted, so restarts and deploys never use up a report's attempts; the
    next claim resumes after the last committed chunk.
    """
    async with db.transaction() as conn:
        await _check_owner(conn, claim)
        await conn.execute(
            f"UPDATE reports SET status = 'queued', attempts = attempts - 1, heartbeat_at = NULL WHERE {REPORT_KEY}",
            _key(claim),
        )


async def fail_run(db: Database, claim: Claim, error: str) -> None:
    """Mark the run failed with a reason, if this claim still owns it."""
    async with db.transaction() as conn:
        await _check_owner(conn, claim)
        await conn.execute(
            "UPDATE reports SET status = 'failed', error = :error, finished_at = :now, heartbeat_at = NULL"
            f" WHERE {REPORT_KEY}",
            {"error": error, "now": now_ms(), **_key(claim)},
        )
        await conn.execute(f"DELETE FROM report_rows WHERE {ITS_ROWS}", _key(claim))


class UnfinishedRun(msgspec.Struct, frozen=True):
    account_id: int
    report_id: str
    run: int
    status: str
    lease: int
    heartbeat_at: int | None


_UNFINISHED = (
    "SELECT account_id, id, run, status, lease, heartbeat_at FROM reports WHERE status IN ('queued', 'processing')"
)


async def unfinished_runs(db: Database) -> list[UnfinishedRun]:
    """Every queued or processing run, oldest report first (at most one per account). The one
    read of every account at once (the reconciler's, every few seconds; `reports_by_status`)."""
    return [_unfinished(row) for row in await db.fetch(f"{_UNFINISHED} ORDER BY pk")]


async def unfinished_run(db: Database, account_id: int, report_id: str) -> UnfinishedRun | None:
    """The report's run as it is now, if it is queued or processing."""
    row = await db.fetch_one(
        f"{_UNFINISHED} AND account_id = :account_id AND id = :id", {"account_id": account_id, "id": report_id}
    )
    return _unfinished(row) if row else None


def _unfinished(row: Row) -> UnfinishedRun:
    return UnfinishedRun(
        account_id=row["account_id"],
        report_id=row["id"],
        run=row["run"],
        status=row["status"],
        lease=row["lease"],
        heartbeat_at=row["heartbeat_at"],
    )


def _match(table: str, spec: ReportSpec) -> str:
    codes = ", ".join(str(ACTION_CODES[action]) for action in spec.actions)  # catalogue integers, not input
    return (
        f"SELECT occurred_at, seq, action, campaign_pk, details FROM {table}"
        f" WHERE account_id = :account_id AND email = :email AND occurred_at < :end_at AND action IN ({codes})"
    )


def _tables(spec: ReportSpec) -> tuple[str, ...]:
    return (HOT, ARCHIVED) if spec.include_archived else (HOT,)


def _match_params(account_id: int, spec: ReportSpec) -> dict[str, object]:
    return {"account_id": account_id, "email": spec.email, "end_at": spec.end}


def _count_matching(account_id: int, spec: ReportSpec) -> tuple[str, dict[str, object]]:
    """An SQL expression counting the search's matching events, and its parameters."""
    counts = []
    for table in _tables(spec):
        query = _match(table, spec).replace("occurred_at, seq, action, campaign_pk, details", "count(*)", 1)
        counts.append(f"({query} AND occurred_at >= :start_at)")
    return " + ".join(counts), {**_match_params(account_id, spec), "start_at": spec.start}


def _copy_statement(claim: Claim, limit: int) -> tuple[str, dict[str, object]]:
    """INSERT the next `limit` matching events (by occurred_at, seq) after the resume point.

    Each table is an index range scan in key order that stops after `limit` rows; with archived
    campaigns included, the first `limit` of the two tables' are copied. Without the limit inside
    each, PostgreSQL reads every remaining match of both tables and sorts them, for every chunk
    (bench/job_vs_sqlite.py, archived against live only). A campaign archived or restored
    mid-run moves its events between the tables with their keys, so the one resume point stays
    right.
    """
    spec = claim.spec
    scans = " UNION ALL ".join(
        f"SELECT * FROM ({_match(table, spec)} AND (occurred_at, seq) > (:after_at, :after_seq)"
        f" ORDER BY occurred_at, seq LIMIT :limit) AS {table}"
        for table in _tables(spec)
    )
    return (
        "INSERT INTO report_rows (account_id, report_pk, occurred_at, seq, action, campaign_pk, details)"
        " SELECT CAST(:account_id AS BIGINT), CAST(:pk AS BIGINT), *"
        f" FROM ({scans} ORDER BY occurred_at, seq LIMIT :limit) AS matching"
        " RETURNING occurred_at, seq",
        {
            **_match_params(claim.account_id, spec),
            "after_at": claim.after[0],
            "after_seq": claim.after[1],
            "pk": claim.report_pk,
            "limit": limit,
        },
    )


async def _check_owner(conn: Connection, claim: Claim) -> None:
    """Raise StaleRun unless `claim` still owns its run. The row is locked until the transaction
    ends (FOR UPDATE on PostgreSQL; SQLite has one writer), so no newer claim can take the run
    between this check and the write that follows it."""
    owned = await conn.fetch_one(
        f"SELECT 1 FROM reports WHERE {REPORT_KEY} AND id = :id AND run = :run AND lease = :lease"
        f" AND status = 'processing'{conn.dialect.for_update}",
        {**_key(claim), "id": claim.report_id, "run": claim.run, "lease": claim.lease},
    )
    if owned is None:
        raise StaleRun()
