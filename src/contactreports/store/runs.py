"""A report run as the worker sees it: claim, copy matching events in chunks, finish.

Only the latest claimant of a run may write: every write checks the report's id, run and
lease, so a duplicated or stale job (the report was deleted, re-run or taken over)
stops without writing. Rows are visible only once the report is `done`, so a run's rows
appear all at once.
"""

from __future__ import annotations

import aiosqlite
import msgspec

from contactreports.catalogue import ACTION_CODES
from contactreports.models import ReportSpec, now_ms
from contactreports.store.database import Database

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


async def claim_run(db: Database, report_id: str, run: int) -> Claim | None:
    """Take a queued (or abandoned processing) run; None if it is stale.

    A run that was interrupted resumes where its last committed chunk ended.
    """
    now = now_ms()
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "UPDATE reports SET status = 'processing', lease = lease + 1, attempts = attempts + 1,"
            " started_at = coalesce(started_at, ?), heartbeat_at = ?"
            " WHERE id = ? AND run = ? AND status IN ('queued', 'processing')"
            " RETURNING pk, lease, attempts, account_id, email, actions, start_at, end_at, include_archived,"
            " scanned, total, scan_after_at, scan_after_seq",
            (now, now, report_id, run),
        )
        if not rows:
            return None
        (pk, lease, attempts, account_id, email, actions, start, end, archived, scanned, total, after_at, after_seq) = (
            rows[0]
        )
        spec = ReportSpec(email, tuple(msgspec.json.decode(actions)), start, end, bool(archived))
        if after_at is None:  # a fresh run: forget the rows of earlier runs
            await conn.execute("DELETE FROM report_rows WHERE report_pk = ?", (pk,))
            # (start, 0) sorts before every event at `start`: seq is never below 1.
            after_at, after_seq = start, 0
            count, count_params = _count_matching(account_id, spec)
            rows = await conn.execute_fetchall(
                f"UPDATE reports SET total = {count}, scan_after_at = ?, scan_after_seq = ? WHERE pk = ?"
                " RETURNING total",
                (*count_params, after_at, after_seq, pk),
            )
            total = rows[0][0]
    return Claim(
        report_id=report_id,
        report_pk=pk,
        run=run,
        lease=lease,
        attempts=attempts,
        account_id=account_id,
        spec=spec,
        scanned=scanned,
        total=total,
        after=(after_at, after_seq),
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
        keys = await conn.execute_fetchall(*_copy_statement(claim, limit))
        if keys:
            claim.after = max(keys)
            claim.scanned += len(keys)
        if len(keys) < limit:
            await _finish(conn, claim)
        else:
            await conn.execute(
                "UPDATE reports SET scanned = ?, heartbeat_at = ?, scan_after_at = ?, scan_after_seq = ? WHERE pk = ?",
                (claim.scanned, now_ms(), *claim.after, claim.report_pk),
            )
    return len(keys)


async def _finish(conn: aiosqlite.Connection, claim: Claim) -> None:
    """Mark the run done with the rows it holds, making them visible."""
    (row_count,) = (
        await conn.execute_fetchall("SELECT count(*) FROM report_rows WHERE report_pk = ?", (claim.report_pk,))
    )[0]
    await conn.execute(
        "UPDATE reports SET status = 'done', row_count = ?, scanned = ?, total = ?, finished_at = ?,"
        " heartbeat_at = NULL WHERE pk = ?",
        (row_count, row_count, row_count, now_ms(), claim.report_pk),
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
            "UPDATE reports SET status = 'queued', attempts = attempts - 1, heartbeat_at = NULL WHERE pk = ?",
            (claim.report_pk,),
        )


async def fail_run(db: Database, claim: Claim, error: str) -> None:
    """Mark the run failed with a reason, if this claim still owns it."""
    async with db.transaction() as conn:
        await _check_owner(conn, claim)
        await conn.execute(
            "UPDATE reports SET status = 'failed', error = ?, finished_at = ?, heartbeat_at = NULL WHERE pk = ?",
            (error, now_ms(), claim.report_pk),
        )
        await conn.execute("DELETE FROM report_rows WHERE report_pk = ?", (claim.report_pk,))


class UnfinishedRun(msgspec.Struct, frozen=True):
    report_id: str
    run: int
    status: str
    lease: int
    heartbeat_at: int | None


_UNFINISHED = "SELECT id, run, status, lease, heartbeat_at FROM reports WHERE status IN ('queued', 'processing')"


async def unfinished_runs(db: Database) -> list[UnfinishedRun]:
    """Every queued or processing run, oldest report first (at most one per account)."""
    rows = await db.reader.execute_fetchall(f"{_UNFINISHED} ORDER BY pk")
    return [UnfinishedRun(*row) for row in rows]


async def unfinished_run(db: Database, report_id: str) -> UnfinishedRun | None:
    """The report's run as it is now, if it is queued or processing."""
    rows = await db.reader.execute_fetchall(f"{_UNFINISHED} AND id = ?", (report_id,))
    return UnfinishedRun(*rows[0]) if rows else None


def _match(table: str, spec: ReportSpec) -> str:
    codes = ", ".join(str(ACTION_CODES[action]) for action in spec.actions)  # catalogue integers, not input
    return (
        f"SELECT occurred_at, seq, action, campaign_pk, details FROM {table}"
        f" WHERE account_id = ? AND email = ? AND occurred_at < ? AND action IN ({codes})"
    )


def _tables(spec: ReportSpec) -> tuple[str, ...]:
    return (HOT, ARCHIVED) if spec.include_archived else (HOT,)


def _count_matching(account_id: int, spec: ReportSpec) -> tuple[str, tuple]:
    """An SQL expression counting the search's matching events, and its parameters."""
    counts, params = [], []
    for table in _tables(spec):
        query = _match(table, spec).replace("occurred_at, seq, action, campaign_pk, details", "count(*)", 1)
        counts.append(f"({query} AND occurred_at >= ?)")
        params += [account_id, spec.email, spec.end, spec.start]
    return " + ".join(counts), tuple(params)


def _copy_statement(claim: Claim, limit: int) -> tuple[str, tuple]:
    """INSERT the next `limit` matching events (by occurred_at, seq) after the resume point.

    Each table is an index range scan in key order. With archived campaigns included, the
    compound SELECT's ORDER BY makes SQLite merge the two scans (MERGE (UNION ALL)), reading
    only the rows it copies; a campaign archived or restored mid-run moves its events between
    the tables with their keys, so the one resume point stays right.
    """
    spec, after = claim.spec, claim.after
    tables = _tables(spec)
    scans = " UNION ALL ".join(f"{_match(table, spec)} AND (occurred_at, seq) > (?, ?)" for table in tables)
    params = [claim.account_id, spec.email, spec.end, *after] * len(tables)
    return (
        "INSERT INTO report_rows (report_pk, occurred_at, seq, action, campaign_pk, details)"
        f" SELECT ?, * FROM ({scans} ORDER BY occurred_at, seq LIMIT ?)"
        " RETURNING occurred_at, seq",
        (claim.report_pk, *params, limit),
    )


async def _check_owner(conn: aiosqlite.Connection, claim: Claim) -> None:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM reports WHERE pk = ? AND id = ? AND run = ? AND lease = ? AND status = 'processing'",
        (claim.report_pk, claim.report_id, claim.run, claim.lease),
    )
    if not rows:
        raise StaleRun()
