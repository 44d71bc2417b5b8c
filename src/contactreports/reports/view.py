"""A report as the API answers it and the web page shows it."""

from __future__ import annotations

import msgspec

from contactreports.models import Report, Status, TimestampOut, format_ms


class Progress(msgspec.Struct):
    scanned: int
    total: int | None
    percent: float


class ReportOut(msgspec.Struct):
    id: str
    email: str
    actions: list[str]
    start: TimestampOut
    end: TimestampOut
    include_archived: bool
    status: Status
    progress: Progress
    row_count: int | None
    error: str | None
    attempts: int
    created_at: TimestampOut
    started_at: TimestampOut | None
    finished_at: TimestampOut | None


class ReportPage(msgspec.Struct):
    """A page of reports, newest first. `next_cursor` asks for the next page; null on the last."""

    items: list[ReportOut]
    next_cursor: str | None


def _optional_ms(ms: int | None) -> str | None:
    return format_ms(ms) if ms is not None else None


def progress(report: Report) -> Progress:
    if report.status == "done":
        percent = 100.0
    elif report.total:
        # Capped below 100 until done: events ingested mid-run can push scanned past total.
        percent = min(99.9, round(100 * report.scanned / report.total, 1))
    else:
        percent = 0.0
    return Progress(report.scanned, report.total, percent)


def report_out(report: Report) -> ReportOut:
    spec = report.spec
    return ReportOut(
        id=report.id,
        email=spec.email,
        actions=list(spec.actions),
        start=format_ms(spec.start),
        end=format_ms(spec.end),
        include_archived=spec.include_archived,
        status=report.status,
        progress=progress(report),
        row_count=report.row_count,
        error=report.error,
        attempts=report.attempts,
        created_at=format_ms(report.created_at),
        started_at=_optional_ms(report.started_at),
        finished_at=_optional_ms(report.finished_at),
    )
