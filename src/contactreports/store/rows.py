"""Reading a done report's rows, oldest first (ties in ingestion order)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from functools import partial

import msgspec

from contactreports.catalogue import ACTION_CODES, ACTION_NAMES
from contactreports.models import CampaignRef, Report, ReportRow, Summary
from contactreports.store.database import Connection, Database, StoreBusy
from contactreports.store.reports import ITS_ROWS, REPORT_KEY

EMPTY_DETAILS = msgspec.Raw(b"{}")
# Rows per query when streaming a whole report (exports): small enough that one chunk's
# query and formatting never hold up other requests for long (details are capped in size).
STREAM_CHUNK = 1_000


# The report's row of its run while it is done, joined to `report_rows r` (REPORT_KEY's rule).
_DONE_RUN = "p.account_id = r.account_id AND p.pk = r.report_pk AND p.run = :run AND p.status = 'done'"


def _key(report: Report) -> dict[str, int]:
    return {"account_id": report.account_id, "pk": report.pk, "run": report.run}


class ReportChanged(Exception):
    """The report was deleted or re-run while its rows were being read."""


async def page_rows(
    db: Database, report: Report, actions: Sequence[str], after: tuple[int, int] | None, limit: int
) -> list[ReportRow]:
    """Rows of the report's run after the (occurred_at, seq) key `after`; only `actions` when given.

    Only while the report is still done with that run: a rerun or delete makes this empty.
    """
    codes = ", ".join(str(ACTION_CODES[action]) for action in actions)  # catalogue integers, not input
    action_filter = f" AND r.action IN ({codes})" if codes else ""
    after_at, after_seq = after or (-(2**62), 0)
    rows = await db.fetch(
        "SELECT r.occurred_at, r.seq, r.action, c.id AS campaign_id, c.name AS campaign_name,"
        " c.archived AS campaign_archived, r.details"
        f" FROM report_rows r JOIN reports p ON {_DONE_RUN}"
        " LEFT JOIN campaigns c ON c.account_id = r.account_id AND c.pk = r.campaign_pk"
        " WHERE r.account_id = :account_id AND r.report_pk = :pk"
        f" AND (r.occurred_at, r.seq) > (:after_at, :after_seq){action_filter}"
        " ORDER BY r.occurred_at, r.seq LIMIT :limit",
        {**_key(report), "after_at": after_at, "after_seq": after_seq, "limit": limit},
    )
    return [
        ReportRow(
            occurred_at=row["occurred_at"],
            seq=row["seq"],
            action=ACTION_NAMES[row["action"]],
            campaign=(
                CampaignRef(row["campaign_id"], row["campaign_name"], bool(row["campaign_archived"]))
                if row["campaign_id"] is not None
                else None
            ),
            details=msgspec.Raw(row["details"].encode()) if row["details"] is not None else EMPTY_DETAILS,
        )
        for row in rows
    ]


async def stream_rows(db: Database, report: Report) -> AsyncIterator[list[ReportRow]]:
    """All rows of a done run in chunks, each its own short query (no long-held cursor).

    Raises ReportChanged if the report stops being done with that run part-way, so that a
    download breaks off rather than ending short as if complete.
    """
    after = None
    while chunk := await page_rows(db, report, (), after, STREAM_CHUNK):
        yield chunk
        after = (chunk[-1].occurred_at, chunk[-1].seq)
    still_done = await db.fetch_one(
        f"SELECT 1 FROM reports WHERE {REPORT_KEY} AND run = :run AND status = 'done'", _key(report)
    )
    if still_done is None:
        raise ReportChanged()


async def report_summary(db: Database, report: Report, bars: int) -> Summary:
    """A done run's summary with `bars` slices of activity; computed at its first view, then kept."""
    kept = await db.fetch_value(
        f"SELECT summary FROM report_summaries WHERE {ITS_ROWS} AND run = :run",
        _key(report),
    )
    if kept is not None:
        summary = _decode_summary(kept)
        if len(summary.activity) == bars:
            return summary
    summary = await db.read_snapshot(partial(_summarize, report=report, bars=bars))
    try:
        async with db.transaction() as conn:
            # Only while the run is still the done one read above: a rerun's summary is its own.
            await conn.execute(
                "INSERT INTO report_summaries (account_id, report_pk, run, summary)"
                " SELECT CAST(:account_id AS BIGINT), CAST(:pk AS BIGINT), CAST(:run AS BIGINT),"
                " CAST(:summary AS TEXT)"
                f" WHERE EXISTS (SELECT 1 FROM reports WHERE {REPORT_KEY} AND run = :run AND status = 'done')"
                " ON CONFLICT (account_id, report_pk) DO UPDATE SET run = excluded.run, summary = excluded.summary",
                {**_key(report), "summary": msgspec.json.encode(summary).decode()},
            )
    except StoreBusy:
        pass  # another process is writing at length: the next view keeps it
    return summary


_decode_summary = msgspec.json.Decoder(Summary).decode


async def _summarize(conn: Connection, *, report: Report, bars: int) -> Summary:
    """Both reads in one snapshot (see `Database.read_snapshot`): the bars add up to the counts."""
    per_action = await conn.fetch(
        "SELECT r.action, COUNT(*) AS count, MIN(r.occurred_at) AS first, MAX(r.occurred_at) AS last"
        f" FROM report_rows r JOIN reports p ON {_DONE_RUN}"
        " WHERE r.account_id = :account_id AND r.report_pk = :pk GROUP BY r.action ORDER BY COUNT(*) DESC, r.action",
        _key(report),
    )
    counts = {ACTION_NAMES[row["action"]]: row["count"] for row in per_action}
    first = min((row["first"] for row in per_action), default=None)
    last = max((row["last"] for row in per_action), default=None)
    activity = [0] * bars
    if first is not None and last is not None:
        per_slice = await conn.fetch(
            "SELECT (occurred_at - :first) * :bars / :span AS bar, COUNT(*) AS count FROM report_rows"
            f" WHERE {ITS_ROWS} GROUP BY 1",
            {"first": first, "bars": bars, "span": last - first + 1, **_key(report)},
        )
        for row in per_slice:
            activity[min(max(row["bar"], 0), bars - 1)] += row["count"]
    return Summary(counts, first, last, activity)
