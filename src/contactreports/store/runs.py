"""A report run as the worker sees it: claim, copy matching events in chunks, finish.

Only the latest claimant of a run may write: every write checks (run, attempts), so a
duplicated or stale job (the report was deleted or re-run meanwhile) stops without writing.
Rows are visible only once the report is `done`, so a run's rows appear all at once.
"""

from __future__ import annotations

import msgspec

import aiosqlite

from contactreports.catalogue import ACTION_CODES
from contactreports.models import ReportSpec, now_ms
from contactreports.store.database import Database

# Where matching events live; a search with include_archived reads both, in this order.
SOURCES = ("events", "archived_events")


class StaleRun(Exception):
    """The run was deleted, re-run or taken over by a newer attempt."""


class Claim(msgspec.Struct, kw_only=True):
    report_pk: int
    run: int
    attempts: int
    account_id: int
    spec: ReportSpec
    scanned: int
    total: int
    # Resume point: the source index and the last (occurred_at, seq) copied from it.
    source: int
    after: tuple[int, int]


async def claim_run(db: Database, report_id: str, run: int) -> Claim | None:
    """Take a queued (or abandoned processing) run; None if it is stale.

    A run that was interrupted resumes where its last committed chunk ended.
    """
    now = now_ms()
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "UPDATE reports SET status = 'processing', attempts = attempts + 1,"
            " started_at = coalesce(started_at, ?), heartbeat_at = ?"
            " WHERE id = ? AND run = ? AND status IN ('queued', 'processing')"
            " RETURNING pk, attempts, account_id, email, actions, start_at, end_at, include_archived,"
            " scanned, total, scan_source, scan_after_at, scan_after_seq",
            (now, now, report_id, run),
        )
        if not rows:
            return None
        (pk, attempts, account_id, email, actions, start, end, archived,
         scanned, total, source, after_at, after_seq) = rows[0]
        spec = ReportSpec(email, tuple(msgspec.json.decode(actions)), start, end, bool(archived))
        if source is None:  # a fresh run: forget rows of earlier runs
            await conn.execute("DELETE FROM report_rows WHERE report_pk = ?", (pk,))
            source, after_at, after_seq = 0, start, 0
            total = await _count_matching(conn, account_id, spec)
            await conn.execute(
                "UPDATE reports SET total = ?, scan_source = 0, scan_after_at = ?, scan_after_seq = 0 WHERE pk = ?",
                (total, start, pk),
            )
    return Claim(
        report_pk=pk, run=run, attempts=attempts, account_id=account_id, spec=spec,
        scanned=scanned, total=total, source=source, after=(after_at, after_seq),
    )


async def copy_chunk(db: Database, claim: Claim, limit: int) -> int:
    """Copy up to `limit` further matching events into the report's rows; 0 when all are copied.

    Advances claim.source/after/scanned and the report's progress and heartbeat in the same
    transaction, so a crash resumes exactly after the last committed chunk.
    """
    async with db.transaction() as conn:
        await _check_owner(conn, claim)
        copied = 0
        while claim.source < len(_sources(claim.spec)) and not copied:
            copied = await _copy_from(conn, claim, limit)
            if not copied:
                claim.source += 1
                claim.after = (claim.spec.start, 0)
        claim.scanned += copied
        await conn.execute(
            "UPDATE reports SET scanned = ?, heartbeat_at = ?, scan_source = ?, scan_after_at = ?, scan_after_seq = ?"
            " WHERE pk = ?",
            (claim.scanned, now_ms(), claim.source, *claim.after, claim.report_pk),
        )
    return copied


async def finish_run(db: Database, claim: Claim) -> int:
    """Mark the run done, making its rows visible; returns the row count."""
    async with db.transaction() as conn:
        await _check_owner(conn, claim)
        (row_count,) = (await conn.execute_fetchall(
            "SELECT count(*) FROM report_rows WHERE report_pk = ?", (claim.report_pk,)
        ))[0]
        await conn.execute(
            "UPDATE reports SET status = 'done', row_count = ?, scanned = ?, total = ?, finished_at = ?,"
            " heartbeat_at = NULL WHERE pk = ?",
            (row_count, row_count, row_count, now_ms(), claim.report_pk),
        )
    return row_count


async def fail_run(db: Database, report_id: str, run: int, error: str) -> bool:
    """Mark an active run failed with a reason; False if the run is stale."""
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "UPDATE reports SET status = 'failed', error = ?, finished_at = ?, heartbeat_at = NULL"
            " WHERE id = ? AND run = ? AND status IN ('queued', 'processing') RETURNING pk",
            (error, now_ms(), report_id, run),
        )
        if rows:
            await conn.execute("DELETE FROM report_rows WHERE report_pk = ?", (rows[0][0],))
    return bool(rows)


def _sources(spec: ReportSpec) -> tuple[str, ...]:
    return SOURCES if spec.include_archived else SOURCES[:1]


def _match(spec: ReportSpec) -> tuple[str, tuple]:
    codes = [ACTION_CODES[action] for action in spec.actions]
    return (
        f"account_id = ? AND email = ? AND occurred_at < ? AND action IN ({', '.join('?' * len(codes))})",
        (spec.email, spec.end, *codes),
    )


async def _count_matching(conn: aiosqlite.Connection, account_id: int, spec: ReportSpec) -> int:
    where, params = _match(spec)
    total = 0
    for table in _sources(spec):
        rows = await conn.execute_fetchall(
            f"SELECT count(*) FROM {table} WHERE {where} AND occurred_at >= ?", (account_id, *params, spec.start)
        )
        total += rows[0][0]
    return total


async def _copy_from(conn: aiosqlite.Connection, claim: Claim, limit: int) -> int:
    where, params = _match(claim.spec)
    table = _sources(claim.spec)[claim.source]
    # (occurred_at, seq) > (after) starts the index range scan right after the last copied row;
    # the first chunk starts at (start, 0), and seq is never below 1.
    keys = await conn.execute_fetchall(
        "INSERT INTO report_rows (report_pk, occurred_at, seq, action, campaign_pk, details)"
        f" SELECT ?, occurred_at, seq, action, campaign_pk, details FROM {table}"
        f" WHERE {where} AND (occurred_at, seq) > (?, ?) ORDER BY occurred_at, seq LIMIT ?"
        " RETURNING occurred_at, seq",
        (claim.report_pk, claim.account_id, *params, *claim.after, limit),
    )
    if keys:
        claim.after = max(keys)
    return len(keys)


async def _check_owner(conn: aiosqlite.Connection, claim: Claim) -> None:
    rows = await conn.execute_fetchall(
        "SELECT 1 FROM reports WHERE pk = ? AND run = ? AND attempts = ? AND status = 'processing'",
        (claim.report_pk, claim.run, claim.attempts),
    )
    if not rows:
        raise StaleRun()
