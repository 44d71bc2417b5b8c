"""Reports as users see them: create, read, list, delete, rerun."""

from __future__ import annotations

import json
import uuid

from contactreports.models import Report, ReportSpec, Status, now_ms
from contactreports.store.database import Connection, Database, Row, StoreBusy, UniqueViolation

REPORT_COLUMNS = (
    "pk, id, account_id, email, actions, start_at, end_at, include_archived, status, run, attempts,"
    " scanned, total, row_count, error, created_at, started_at, finished_at"
)
# A report, and its rows or summary, by key (`:account_id`, `:pk`): every statement on them names
# the account, so a distributed PostgreSQL routes it to one shard (README, "Running at scale").
REPORT_KEY = "account_id = :account_id AND pk = :pk"
ITS_ROWS = "account_id = :account_id AND report_pk = :pk"
# Tries of a write that lost, between two of its statements, to the active report ending.
RACE_TRIES = 5
# The queued or processing report, of which an account has at most one (a unique index).
ACTIVE = "status IN ('queued', 'processing')"


class ActiveReportExists(Exception):
    """The account already has a report queued or processing."""

    def __init__(self, active_report_id: str):
        super().__init__(f"report {active_report_id} is still active")
        self.active_report_id = active_report_id


def spec_from_row(row: Row) -> ReportSpec:
    """The search a row of `reports` holds."""
    return ReportSpec(
        row["email"], tuple(json.loads(row["actions"])), row["start_at"], row["end_at"], bool(row["include_archived"])
    )


def report_from_row(row: Row) -> Report:
    return Report(
        pk=row["pk"],
        id=row["id"],
        account_id=row["account_id"],
        spec=spec_from_row(row),
        status=row["status"],
        run=row["run"],
        attempts=row["attempts"],
        scanned=row["scanned"],
        total=row["total"],
        row_count=row["row_count"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


async def create_report(db: Database, account_id: int, spec: ReportSpec) -> Report:
    """Insert a queued report; raises ActiveReportExists if the account has an active one."""
    now = now_ms()
    values = {
        "id": uuid.uuid4().hex,
        "account_id": account_id,
        "email": spec.email,
        "actions": json.dumps(list(spec.actions)),
        "start_at": spec.start,
        "end_at": spec.end,
        "include_archived": spec.include_archived,
        "now": now,
    }
    for _ in range(RACE_TRIES):
        async with db.transaction() as conn:
            # The unique index on the active report decides, even between processes writing at once.
            row = await conn.fetch_one(
                "INSERT INTO reports (id, account_id, email, actions, start_at, end_at, include_archived,"
                " status, created_at, queued_at) VALUES (:id, :account_id, :email, :actions, :start_at, :end_at,"
                " :include_archived, 'queued', :now, :now)"
                f" ON CONFLICT (account_id) WHERE {ACTIVE} DO NOTHING"
                f" RETURNING {REPORT_COLUMNS}",
                values,
            )
            active = None if row else await active_report_id(conn, account_id)
        if row is not None:
            return report_from_row(row)
        if active is not None:
            raise ActiveReportExists(active)
    raise StoreBusy("the account's active report kept changing")


async def rerun_report(db: Database, account_id: int, report_id: str) -> Report | None:
    """Queue a finished report again as a new run; None if there is no such report."""
    for _ in range(RACE_TRIES):
        try:
            async with db.transaction() as conn:
                row = await conn.fetch_one(
                    "UPDATE reports SET status = 'queued', queued_at = :now, run = run + 1, attempts = 0,"
                    " scanned = 0, total = NULL, row_count = NULL, error = NULL, started_at = NULL,"
                    " finished_at = NULL, heartbeat_at = NULL, scan_after_at = NULL, scan_after_seq = NULL"
                    " WHERE account_id = :account_id AND id = :id AND status IN ('done', 'failed')"
                    f" RETURNING {REPORT_COLUMNS}",
                    {"now": now_ms(), "account_id": account_id, "id": report_id},
                )
                exists = row is not None or await conn.fetch_one(
                    "SELECT 1 FROM reports WHERE account_id = :account_id AND id = :id",
                    {"account_id": account_id, "id": report_id},
                )
        except UniqueViolation:  # another report of the account is active (this transaction is undone)
            if (active := await active_report_id(db, account_id)) is not None:
                raise ActiveReportExists(active) from None
            continue
        if row is not None:
            return report_from_row(row)
        if exists:  # the report itself is queued or processing
            raise ActiveReportExists(report_id)
        return None
    raise StoreBusy("the account's active report kept changing")


async def get_report(db: Database, account_id: int, report_id: str) -> Report | None:
    row = await db.lookup(
        f"SELECT {REPORT_COLUMNS} FROM reports WHERE account_id = :account_id AND id = :id",
        {"account_id": account_id, "id": report_id},
    )
    return report_from_row(row) if row else None


async def list_reports(
    db: Database, account_id: int, status: Status | None, before_pk: int | None, limit: int
) -> list[Report]:
    """Newest first; those created before the report `before_pk`."""
    rows = await db.fetch(
        f"SELECT {REPORT_COLUMNS} FROM reports WHERE account_id = :account_id AND pk < :before_pk"
        " AND (CAST(:status AS TEXT) IS NULL OR status = :status) ORDER BY pk DESC LIMIT :limit",
        {
            "account_id": account_id,
            "before_pk": before_pk if before_pk is not None else 2**62,
            "status": status,
            "limit": limit,
        },
    )
    return [report_from_row(row) for row in rows]


async def delete_report(db: Database, account_id: int, report_id: str) -> bool:
    """Delete a report and its rows; a job running for it stops at its next chunk."""
    async with db.transaction() as conn:
        pk = await conn.fetch_value(
            "DELETE FROM reports WHERE account_id = :account_id AND id = :id RETURNING pk",
            {"account_id": account_id, "id": report_id},
        )
        if pk is not None:
            key = {"account_id": account_id, "pk": pk}
            await conn.execute(f"DELETE FROM report_rows WHERE {ITS_ROWS}", key)
            await conn.execute(f"DELETE FROM report_summaries WHERE {ITS_ROWS}", key)
    return pk is not None


async def active_report_id(conn: Connection, account_id: int) -> str | None:
    """The account's queued or processing report, if any (there is at most one). With many writers
    (PostgreSQL) each statement sees what is committed when it runs: the one that made a write
    conflict a statement ago may have ended since."""
    return await conn.fetch_value(
        f"SELECT id FROM reports WHERE account_id = :account_id AND {ACTIVE}", {"account_id": account_id}
    )
