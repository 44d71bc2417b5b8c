"""Reading a done report's rows, oldest first (ties in ingestion order)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from functools import partial

import msgspec

from contactreports.catalogue import ACTION_CODES, ACTION_NAMES
from contactreports.models import CampaignRef, ReportRow, Summary
from contactreports.store.database import Database, StoreBusy

EMPTY_DETAILS = msgspec.Raw(b"{}")
# Rows per query when streaming a whole report (exports): small enough that one chunk's
# query and formatting never hold up other requests for long (details are capped in size).
STREAM_CHUNK = 1_000


class ReportChanged(Exception):
    """The report was deleted or re-run while its rows were being read."""


async def page_rows(
    db: Database, report_pk: int, run: int, actions: Sequence[str], after: tuple[int, int] | None, limit: int
) -> list[ReportRow]:
    """Rows of run `run` after the (occurred_at, seq) key `after`; only `actions` when given.

    Only while the report is still done with that run: a rerun or delete makes this empty.
    """
    codes = [ACTION_CODES[action] for action in actions]
    action_filter = f" AND r.action IN ({', '.join('?' * len(codes))})" if codes else ""
    rows = await db.reader.execute_fetchall(
        "SELECT r.occurred_at, r.seq, r.action, c.id, c.name, c.archived, r.details"
        " FROM report_rows r JOIN reports p ON p.pk = r.report_pk AND p.run = ? AND p.status = 'done'"
        " LEFT JOIN campaigns c ON c.pk = r.campaign_pk"
        f" WHERE r.report_pk = ? AND (r.occurred_at, r.seq) > (?, ?){action_filter}"
        " ORDER BY r.occurred_at, r.seq LIMIT ?",
        (run, report_pk, *(after or (-(2**62), 0)), *codes, limit),
    )
    return [
        ReportRow(
            occurred_at=row[0],
            seq=row[1],
            action=ACTION_NAMES[row[2]],
            campaign=CampaignRef(row[3], row[4], bool(row[5])) if row[3] is not None else None,
            details=msgspec.Raw(row[6].encode()) if row[6] is not None else EMPTY_DETAILS,
        )
        for row in rows
    ]


async def stream_rows(db: Database, report_pk: int, run: int) -> AsyncIterator[list[ReportRow]]:
    """All rows of a done run in chunks, each its own short query (no long-held cursor).

    Raises ReportChanged if the report stops being done with that run part-way, so that a
    download breaks off rather than ending short as if complete.
    """
    after = None
    while chunk := await page_rows(db, report_pk, run, (), after, STREAM_CHUNK):
        yield chunk
        after = (chunk[-1].occurred_at, chunk[-1].seq)
    still_done = await db.reader.execute_fetchall(
        "SELECT 1 FROM reports WHERE pk = ? AND run = ? AND status = 'done'", (report_pk, run)
    )
    if not still_done:
        raise ReportChanged()


async def report_summary(db: Database, report_pk: int, run: int, bars: int) -> Summary:
    """A done run's summary with `bars` slices of activity; computed at its first view, then kept."""
    kept = await db.reader.execute_fetchall(
        "SELECT summary FROM report_summaries WHERE report_pk = ? AND run = ?", (report_pk, run)
    )
    if kept:
        summary = _decode_summary(kept[0][0])
        if len(summary.activity) == bars:
            return summary
    summary = await db.read_apart(partial(_summarize, report_pk=report_pk, run=run, bars=bars))
    try:
        async with db.transaction() as conn:
            # Only while the run is still the done one read above: a rerun's summary is its own.
            await conn.execute(
                "INSERT INTO report_summaries (report_pk, run, summary)"
                " SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM reports WHERE pk = ? AND run = ? AND status = 'done')"
                " ON CONFLICT (report_pk) DO UPDATE SET run = excluded.run, summary = excluded.summary",
                (report_pk, run, msgspec.json.encode(summary).decode(), report_pk, run),
            )
    except StoreBusy:
        pass  # another process is writing at length: the next view keeps it
    return summary


_decode_summary = msgspec.json.Decoder(Summary).decode


def _summarize(conn: sqlite3.Connection, *, report_pk: int, run: int, bars: int) -> Summary:
    """Both reads in one snapshot (see `Database.read_apart`): the bars add up to the counts."""
    per_action = conn.execute(
        "SELECT r.action, COUNT(*), MIN(r.occurred_at), MAX(r.occurred_at)"
        " FROM report_rows r JOIN reports p ON p.pk = r.report_pk AND p.run = ? AND p.status = 'done'"
        " WHERE r.report_pk = ? GROUP BY r.action ORDER BY COUNT(*) DESC, r.action",
        (run, report_pk),
    ).fetchall()
    counts = {ACTION_NAMES[row[0]]: row[1] for row in per_action}
    first = min((row[2] for row in per_action), default=None)
    last = max((row[3] for row in per_action), default=None)
    activity = [0] * bars
    if first is not None and last is not None:
        per_slice = conn.execute(
            "SELECT (occurred_at - ?) * ? / ?, COUNT(*) FROM report_rows WHERE report_pk = ? GROUP BY 1",
            (first, bars, last - first + 1, report_pk),
        )
        for bar, count in per_slice:
            activity[min(max(bar, 0), bars - 1)] += count
    return Summary(counts, first, last, activity)
