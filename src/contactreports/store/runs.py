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
from contactreports.store.database import Connection, Database, Dialect, Row
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
    claim.scanned = 0
    count, count_params = _count_matching(claim.account_id, claim.spec)
    claim.total = await conn.fetch_value(
        f"UPDATE reports SET scanned = 0, total = {count}, scan_after_at = :after_at, scan_after_seq = 0"
        f" WHERE {REPORT_KEY}"
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
        copied = await conn.execute(*_copy_statement(conn.dialect, claim, limit))
        claim.scanned += copied
        if copied < limit:
            await _finish(conn, claim)
        else:
            await _advance(conn, claim)
    return copied


async def _advance(conn: Connection, claim: Claim) -> None:
    """Record the progress of a chunk just copied: the resume point is the report's last row (rows
    are copied in key order), read where the rows are rather than sent back with them."""
    last = f"FROM report_rows WHERE {ITS_ROWS} ORDER BY occurred_at DESC, seq DESC LIMIT 1"
    row = await conn.fetch_one(
        f"UPDATE reports SET scanned = :scanned, heartbeat_at = :now, scan_after_at = (SELECT occurred_at {last}),"
        f" scan_after_seq = (SELECT seq {last}) WHERE {REPORT_KEY} RETURNING scan_after_at, scan_after_seq",
        {"scanned": claim.scanned, "now": now_ms(), **_key(claim)},
    )
    assert row is not None, "the claim's row is locked by _check_owner"
    claim.after = (row["scan_after_at"], row["scan_after_seq"])


async def _finish(conn: Connection, claim: Claim) -> None:
    """Mark the run done with the rows it holds, making them visible. `claim.scanned` counts them:
    each chunk adds what it inserted, committed with the rows (the key makes every row once)."""
    await conn.execute(
        "UPDATE reports SET status = 'done', row_count = :count, scanned = :count, total = :count,"
        f" finished_at = :now, heartbeat_at = NULL WHERE {REPORT_KEY}",
        {"count": claim.scanned, "now": now_ms(), **_key(claim)},
    )


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


def _match(table: str, spec: ReportSpec, columns: str) -> str:
    codes = ", ".join(str(ACTION_CODES[action]) for action in spec.actions)  # catalogue integers, not input
    return (
        f"SELECT {columns} FROM {table}"
        f" WHERE account_id = :account_id AND email = :email AND occurred_at < :end_at AND action IN ({codes})"
    )


def _tables(spec: ReportSpec) -> tuple[str, ...]:
    return (HOT, ARCHIVED) if spec.include_archived else (HOT,)


def _match_params(account_id: int, spec: ReportSpec) -> dict[str, object]:
    return {"account_id": account_id, "email": spec.email, "end_at": spec.end}


def _count_matching(account_id: int, spec: ReportSpec) -> tuple[str, dict[str, object]]:
    """An SQL expression counting the search's matching events, and its parameters."""
    counts = [f"({_match(table, spec, 'count(*)')} AND occurred_at >= :start_at)" for table in _tables(spec)]
    return " + ".join(counts), {**_match_params(account_id, spec), "start_at": spec.start}


# What a report's row copies of an event, and the row's columns.
COPIED_COLUMNS = "occurred_at, seq, action, campaign_pk, details"
ROW_COLUMNS = f"account_id, report_pk, {COPIED_COLUMNS}"
# The key that orders a report's rows; every chunk copies the next ones by it.
ORDER = "ORDER BY occurred_at, seq LIMIT :limit"


def _copy_statement(dialect: Dialect, claim: Claim, limit: int) -> tuple[str, dict[str, object]]:
    """INSERT the next `limit` matching events (by occurred_at, seq) after the resume point.

    Each table is an index range scan in key order that stops after `limit` rows; with archived
    campaigns included, the two scans are merged (`Dialect.limit_each_union_arm` says how each
    backend's planner is brought to do so). A campaign archived or restored mid-run moves its
    events between the tables with their keys, so the one resume point stays right.
    """
    tables = _tables(claim.spec)
    limit_each = len(tables) > 1 and dialect.limit_each_union_arm
    columns = f"CAST(:account_id AS BIGINT), CAST(:pk AS BIGINT), {COPIED_COLUMNS}"

    def arm(table: str) -> str:
        scan = f"{_match(table, claim.spec, columns)} AND (occurred_at, seq) > (:after_at, :after_seq)"
        return f"SELECT * FROM ({scan} {ORDER}) AS {table}" if limit_each else scan

    return (
        f"INSERT INTO report_rows ({ROW_COLUMNS}) {' UNION ALL '.join(map(arm, tables))} {ORDER}",
        {
            **_match_params(claim.account_id, claim.spec),
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
