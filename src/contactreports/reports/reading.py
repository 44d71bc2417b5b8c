"""Reading reports: one, a page of the account's, a page of a done report's rows, its export."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import msgspec

from contactreports.catalogue import ACTION_CODES
from contactreports.exports import MEDIA_TYPES, STREAMED, Format, RowPage, file_chunks, row_view, write_xlsx
from contactreports.models import Account, FieldError, InvalidFields, Report, Status
from contactreports.reports.errors import ReportNotFound, ReportNotReady
from contactreports.reports.view import ReportPage, report_out
from contactreports.services import Services
from contactreports.store import reports as store
from contactreports.store.rows import ReportChanged, page_rows, stream_rows


class Download(msgspec.Struct, frozen=True):
    """A report's rows as a file: its bytes as they are written, its type, and how it is named."""

    chunks: AsyncIterator[bytes]
    media_type: str
    disposition: str  # the Content-Disposition: an attachment and its file name


async def read_report(services: Services, account: Account, report_id: str) -> Report:
    """The account's report; raises ReportNotFound."""
    report = await store.get_report(services.db, account.id, report_id)
    if report is None:
        raise ReportNotFound()
    return report


async def _done_report(services: Services, account: Account, report_id: str) -> Report:
    report = await read_report(services, account, report_id)
    if report.status != "done":
        raise ReportNotReady(f"Report {report.id} is {report.status}; its rows are ready once it is done.")
    return report


def _resume_after(report: Report, position: list | None) -> tuple[int, int] | None:
    """The row key a page starts after. A cursor names the run it was given for: one given before a
    rerun is ReportNotReady (the rows may differ now), not invalid as if it were tampered with."""
    if position is None:
        return None
    run, occurred_at, seq = position
    if run != report.run:
        raise ReportNotReady(
            f"Report {report.id} was re-run since this cursor was given; read its rows again from the first page."
        )
    return occurred_at, seq


async def _check_still_done(services: Services, account: Account, report: Report) -> None:
    """An empty page is also what a rerun or delete committed after `report` was read gives (the rows
    query only sees the run while it is done): answer what the report is now, never an empty page
    that looks like a complete report."""
    now = await read_report(services, account, report.id)
    if (now.run, now.status) != (report.run, "done"):
        raise ReportNotReady(
            f"Report {report.id} was re-run while its rows were read; read them again once it is done."
        )


async def rows_page(
    services: Services, account: Account, report_id: str, action: Iterable[str], limit: int, cursor: str | None
) -> RowPage:
    """A page of a done report's rows, oldest first, only of the actions named (all if none)."""
    actions = sorted(set(action))
    unknown = [FieldError("action", f"unknown action {name!r}") for name in actions if name not in ACTION_CODES]
    if unknown:
        raise InvalidFields(unknown)
    report = await _done_report(services, account, report_id)
    scope = f"rows:{account.id}:{report.id}:{','.join(actions)}"
    after = _resume_after(report, services.cursors.decode(scope, cursor))
    rows = await page_rows(services.db, report, actions, after, limit + 1)
    if not rows:
        await _check_still_done(services, account, report)
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = services.cursors.encode(scope, [report.run, last.occurred_at, last.seq]) if last else None
    return RowPage([row_view(row) for row in rows[:limit]], next_cursor)


async def reports_page(
    services: Services, account: Account, status: Status | None, limit: int, cursor: str | None
) -> ReportPage:
    """A page of the account's reports, newest first."""
    scope = f"reports:{account.id}:{status}"
    position = services.cursors.decode(scope, cursor)
    reports = await store.list_reports(services.db, account.id, status, position[0] if position else None, limit + 1)
    next_cursor = services.cursors.encode(scope, [reports[limit - 1].pk]) if len(reports) > limit else None
    return ReportPage([report_out(r) for r in reports[:limit]], next_cursor)


async def export_rows(services: Services, account: Account, report_id: str, format: Format) -> Download:
    """A done report's rows as a file; an XLSX one is written whole first, so raises ExportTooLarge
    or ReportNotReady (re-run or deleted meanwhile) before any byte is sent."""
    report = await _done_report(services, account, report_id)
    rows = stream_rows(services.db, report)
    if format == "xlsx":
        try:
            chunks = file_chunks(await write_xlsx(rows))
        except ReportChanged as error:
            raise ReportNotReady(f"Report {report.id} was re-run or deleted during the export.") from error
    else:
        chunks = STREAMED[format](rows)
    return Download(chunks, MEDIA_TYPES[format], f'attachment; filename="contact-report-{report.id}.{format}"')
