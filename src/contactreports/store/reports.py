"""Reports as users see them: create, read, list, delete, rerun."""

from __future__ import annotations

import json
import sqlite3
import uuid

import aiosqlite

from contactreports.models import Report, ReportSpec, Status, now_ms
from contactreports.store.database import Database

REPORT_COLUMNS = (
    "pk, id, account_id, email, actions, start_at, end_at, include_archived, status, run, attempts,"
    " scanned, total, row_count, error, created_at, started_at, finished_at"
)


class ActiveReportExists(Exception):
    """The account already has a report queued or processing."""

    def __init__(self, active_report_id: str):
        super().__init__(f"report {active_report_id} is still active")
        self.active_report_id = active_report_id


def report_from_row(row: tuple) -> Report:
    spec = ReportSpec(row[3], tuple(json.loads(row[4])), row[5], row[6], bool(row[7]))
    return Report(
        pk=row[0],
        id=row[1],
        account_id=row[2],
        spec=spec,
        status=row[8],
        run=row[9],
        attempts=row[10],
        scanned=row[11],
        total=row[12],
        row_count=row[13],
        error=row[14],
        created_at=row[15],
        started_at=row[16],
        finished_at=row[17],
    )


async def create_report(db: Database, account_id: int, spec: ReportSpec) -> Report:
    """Insert a queued report; raises ActiveReportExists if the account has an active one."""
    now = now_ms()
    async with db.transaction() as conn:
        try:
            rows = await conn.execute_fetchall(
                "INSERT INTO reports (id, account_id, email, actions, start_at, end_at, include_archived,"
                " status, created_at, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)"
                f" RETURNING {REPORT_COLUMNS}",
                (
                    uuid.uuid4().hex,
                    account_id,
                    spec.email,
                    json.dumps(list(spec.actions)),
                    spec.start,
                    spec.end,
                    int(spec.include_archived),
                    now,
                    now,
                ),
            )
        except sqlite3.IntegrityError as error:
            raise await _active_report_error(conn, account_id, error) from error
    return report_from_row(rows[0])


async def rerun_report(db: Database, account_id: int, report_id: str) -> Report | None:
    """Queue a finished report again as a new run; None if there is no such report."""
    async with db.transaction() as conn:
        try:
            rows = await conn.execute_fetchall(
                "UPDATE reports SET status = 'queued', queued_at = ?, run = run + 1, attempts = 0, scanned = 0,"
                " total = NULL,"
                " row_count = NULL, error = NULL, started_at = NULL, finished_at = NULL, heartbeat_at = NULL,"
                " scan_after_at = NULL, scan_after_seq = NULL"
                " WHERE account_id = ? AND id = ? AND status IN ('done', 'failed')"
                f" RETURNING {REPORT_COLUMNS}",
                (now_ms(), account_id, report_id),
            )
        except sqlite3.IntegrityError as error:
            raise await _active_report_error(conn, account_id, error) from error
        if rows:
            return report_from_row(rows[0])
        exists = await conn.execute_fetchall(
            "SELECT status FROM reports WHERE account_id = ? AND id = ?", (account_id, report_id)
        )
    if exists:  # the report itself is queued or processing
        raise ActiveReportExists(report_id)
    return None


async def _active_report_error(conn: aiosqlite.Connection, account_id: int, error: sqlite3.IntegrityError) -> Exception:
    if "reports.account_id" not in str(error):
        return error
    rows = await conn.execute_fetchall(
        "SELECT id FROM reports WHERE account_id = ? AND status IN ('queued', 'processing')", (account_id,)
    )
    return ActiveReportExists(rows[0][0]) if rows else error


async def get_report(db: Database, account_id: int, report_id: str) -> Report | None:
    row = db.lookup(f"SELECT {REPORT_COLUMNS} FROM reports WHERE account_id = ? AND id = ?", (account_id, report_id))
    return report_from_row(row) if row else None


async def list_reports(
    db: Database, account_id: int, status: Status | None, before_pk: int | None, limit: int
) -> list[Report]:
    """Newest first; those created before the report `before_pk`."""
    rows = await db.reader.execute_fetchall(
        f"SELECT {REPORT_COLUMNS} FROM reports WHERE account_id = ? AND pk < ?"
        " AND (? IS NULL OR status = ?) ORDER BY pk DESC LIMIT ?",
        (account_id, before_pk if before_pk is not None else 2**62, status, status, limit),
    )
    return [report_from_row(row) for row in rows]


async def delete_report(db: Database, account_id: int, report_id: str) -> bool:
    """Delete a report and its rows; a job running for it stops at its next chunk."""
    async with db.transaction() as conn:
        rows = await conn.execute_fetchall(
            "DELETE FROM reports WHERE account_id = ? AND id = ? RETURNING pk", (account_id, report_id)
        )
        if rows:
            await conn.execute("DELETE FROM report_rows WHERE report_pk = ?", (rows[0][0],))
            await conn.execute("DELETE FROM report_summaries WHERE report_pk = ?", (rows[0][0],))
    return bool(rows)


async def active_report_id(db: Database, account_id: int) -> str | None:
    """The account's queued or processing report, if any (there is at most one)."""
    rows = await db.reader.execute_fetchall(
        "SELECT id FROM reports WHERE account_id = ? AND status IN ('queued', 'processing') LIMIT 1", (account_id,)
    )
    return rows[0][0] if rows else None
