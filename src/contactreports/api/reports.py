"""Contact reports: create, poll, list, page rows, export, delete, rerun."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.params import FromQuery, JSONBody, Parameter
from litestar.response import Stream

from contactreports.api.auth import SignedIn
from contactreports.api.errors import ProblemError, invalid, not_found, problem_responses
from contactreports.api.limits import limit_report_creation
from contactreports.api.openapi import ExportOperation
from contactreports.api.pagination import Cursor, Limit, Page
from contactreports.api.schemas import Progress, ReportIn, ReportOut
from contactreports.catalogue import ACTION_CODES, CATEGORY_ACTIONS
from contactreports.config import Settings
from contactreports.exports import (
    MEDIA_TYPES,
    STREAMED,
    ExportTooLarge,
    Format,
    RowView,
    file_chunks,
    row_view,
    write_xlsx,
)
from contactreports.jobs.queue import enqueue_run
from contactreports.models import (
    OUT_OF_RANGE,
    Account,
    FieldError,
    Report,
    ReportSpec,
    Status,
    datetime_to_ms,
    format_ms,
    in_range,
    is_plausible_email,
    normalize_email,
)
from contactreports.store import reports as store
from contactreports.store.rows import ReportChanged, page_rows, stream_rows

log = logging.getLogger(__name__)
LOCATION = ResponseHeader(name="Location", description="/api/reports/{id}: poll it", documentation_only=True)
ReportId = Annotated[str, Parameter(max_length=64)]


def report_spec(data: JSONBody[ReportIn], settings: Settings) -> ReportSpec:
    """Check a search and expand its categories; raises a 400 naming every bad field."""
    errors = []
    email = normalize_email(data.email)
    if not is_plausible_email(email):
        errors.append(FieldError("email", "not an email address"))
    actions = set()
    for i, action in enumerate(data.actions):
        if action not in ACTION_CODES:
            errors.append(FieldError(f"actions[{i}]", f"unknown action {action!r}; see GET /api/actions"))
        actions.add(action)
    for i, category in enumerate(data.categories):
        if category not in CATEGORY_ACTIONS:
            errors.append(FieldError(f"categories[{i}]", f"unknown category {category!r}; see GET /api/actions"))
        actions.update(CATEGORY_ACTIONS.get(category, ()))
    if not data.actions and not data.categories:
        errors.append(FieldError("actions", "name at least one action or category"))
    start, end = datetime_to_ms(data.start), datetime_to_ms(data.end)  # what is stored and searched
    out_of_range = [FieldError(name, OUT_OF_RANGE) for name in ("start", "end") if not in_range(getattr(data, name))]
    if out_of_range:
        errors += out_of_range
    elif start >= end:
        errors.append(FieldError("end", "must be after start (to the millisecond)"))
    elif end - start > settings.max_window_days * 86_400_000:
        errors.append(FieldError("end", f"the window may span at most {settings.max_window_days} days"))
    if errors:
        raise invalid(errors)
    return ReportSpec(email, tuple(sorted(actions)), start, end, data.include_archived)


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


def _conflict(active_report_id: str) -> ProblemError:
    return ProblemError(
        409,
        f"Report {active_report_id} is still queued or processing; one report per account may be active. "
        "Wait for it to finish, or delete it.",
        active_report_id=active_report_id,
    )


async def _enqueue_report(state: State, report: Report) -> None:
    try:
        await enqueue_run(state.redis, state.settings.queue_name, report.id, report.run)
    except Exception:  # Redis is only a transport: the reconciler enqueues queued reports again
        log.warning("could not enqueue report %s run %s; the reconciler will", report.id, report.run, exc_info=True)


async def start_report(state: State, account: Account, spec: ReportSpec) -> Report:
    """Store a new report and queue its run (the API's create and the web page's form); raises
    `store.ActiveReportExists` while the account has one queued or processing."""
    report = await store.create_report(state.db, account.id, spec)
    await _enqueue_report(state, report)
    return report


async def restart_report(state: State, account: Account, report_id: str) -> Report | None:
    """Queue a new run of a report (the API's rerun and the web page's); None if there is no such
    report; raises `store.ActiveReportExists` while the account has one queued or processing."""
    report = await store.rerun_report(state.db, account.id, report_id)
    if report is not None:
        await _enqueue_report(state, report)
    return report


def _accepted(report: Report) -> Response[ReportOut]:
    return Response(report_out(report), status_code=202, headers={"Location": f"/api/reports/{report.id}"})


async def _done_report(state: State, account: Account, report_id: str) -> Report:
    report = await store.get_report(state.db, account.id, report_id)
    if report is None:
        raise not_found("report")
    if report.status != "done":
        raise ProblemError(409, f"Report {report.id} is {report.status}; its rows are ready once it is done.")
    return report


def _resume_after(report: Report, position: list | None) -> tuple[int, int] | None:
    """The row key a page starts after. A cursor names the run it was given for: one given before a
    rerun is a 409 (the rows may differ now), not a 400 as if it were tampered with."""
    if position is None:
        return None
    run, occurred_at, seq = position
    if run != report.run:
        raise ProblemError(
            409, f"Report {report.id} was re-run since this cursor was given; read its rows again from the first page."
        )
    return occurred_at, seq


async def _check_still_done(state: State, account: Account, report: Report) -> None:
    """An empty page is also what a rerun or delete committed after `report` was read gives (the rows
    query only sees the run while it is done): answer what the report is now, never an empty page
    that looks like a complete report."""
    now = await store.get_report(state.db, account.id, report.id)
    if now is None:
        raise not_found("report")
    if (now.run, now.status) != (report.run, "done"):
        raise ProblemError(
            409, f"Report {report.id} was re-run while its rows were read; read them again once it is done."
        )


async def rows_page(
    state: State, account: Account, report_id: str, action: Iterable[str], limit: int, cursor: str | None
) -> Page[RowView]:
    """A page of a done report's rows (the API's `/rows` and the web page's table)."""
    actions = sorted(set(action))
    unknown = [FieldError("action", f"unknown action {name!r}") for name in actions if name not in ACTION_CODES]
    if unknown:
        raise invalid(unknown)
    report = await _done_report(state, account, report_id)
    scope = f"rows:{account.id}:{report.id}:{','.join(actions)}"
    after = _resume_after(report, state.cursors.decode(scope, cursor))
    rows = await page_rows(state.db, report.pk, report.run, actions, after, limit + 1)
    if not rows:
        await _check_still_done(state, account, report)
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = state.cursors.encode(scope, [report.run, last.occurred_at, last.seq]) if last else None
    return Page([row_view(row) for row in rows[:limit]], next_cursor)


async def reports_page(
    state: State, account: Account, status: Status | None, limit: int, cursor: str | None
) -> Page[ReportOut]:
    """A page of the account's reports, newest first (the API's list and the web page's)."""
    scope = f"reports:{account.id}:{status}"
    position = state.cursors.decode(scope, cursor)
    reports = await store.list_reports(state.db, account.id, status, position[0] if position else None, limit + 1)
    next_cursor = state.cursors.encode(scope, [reports[limit - 1].pk]) if len(reports) > limit else None
    return Page([report_out(r) for r in reports[:limit]], next_cursor)


async def export_stream(state: State, account: Account, report_id: str, format: Format) -> Stream:
    """A done report's rows as a download (the API's `/export` and the web page's buttons)."""
    report = await _done_report(state, account, report_id)
    rows = stream_rows(state.db, report.pk, report.run)
    if format == "xlsx":
        try:
            body = file_chunks(await write_xlsx(rows))
        except ExportTooLarge as error:
            raise ProblemError(422, str(error)) from error
        except ReportChanged as error:
            raise ProblemError(409, f"Report {report.id} was re-run or deleted during the export.") from error
    else:
        body = STREAMED[format](rows)
    return Stream(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="contact-report-{report.id}.{format}"'},
    )


class ReportController(Controller):
    path = "/reports"
    tags = ["reports"]

    @post(
        "/",
        status_code=202,
        guards=[limit_report_creation],
        responses=problem_responses(403, 409, 413, 429, 503),
        response_headers=[LOCATION],
        summary="Create a contact report",
        description=(
            "Queues a search; poll `GET /api/reports/{id}` until `done`. `409` with `active_report_id` while the "
            "account has a report queued or processing."
        ),
    )
    async def create(self, data: JSONBody[ReportIn], account: SignedIn, state: State) -> Response[ReportOut]:
        spec = report_spec(data, state.settings)
        try:
            report = await start_report(state, account, spec)
        except store.ActiveReportExists as error:
            raise _conflict(error.active_report_id) from error
        return _accepted(report)

    @get("/", responses=problem_responses(), summary="Reports, newest first")
    async def list(
        self,
        account: SignedIn,
        state: State,
        status: FromQuery[Status | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[ReportOut]:
        return await reports_page(state, account, status, limit, cursor)

    @get("/{report_id:str}", responses=problem_responses(404), summary="A report (poll this)")
    async def read(self, report_id: ReportId, account: SignedIn, state: State) -> ReportOut:
        report = await store.get_report(state.db, account.id, report_id)
        if report is None:
            raise not_found("report")
        return report_out(report)

    @get(
        "/{report_id:str}/rows",
        responses=problem_responses(404, 409),
        summary="A done report's rows, oldest first",
        description=(
            "`409` while the report is not done, and for a cursor given before the report was re-run: "
            "read its rows again from the first page."
        ),
    )
    async def rows(
        self,
        report_id: ReportId,
        account: SignedIn,
        state: State,
        action: Annotated[list[str] | None, Parameter(description="Only these actions (repeatable).")] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> Page[RowView]:
        return await rows_page(state, account, report_id, action or (), limit, cursor)

    @get(
        "/{report_id:str}/export",
        responses=problem_responses(404, 409, 422),
        operation_class=ExportOperation,
        summary="Download a done report's rows",
        description=(
            "CSV (`timestamp,campaign,action,details`, formula-like cells neutralised), NDJSON (the `/rows` "
            "objects) or XLSX, streamed as an attachment."
        ),
    )
    async def export(self, report_id: ReportId, account: SignedIn, state: State, format: FromQuery[Format]) -> Stream:
        return await export_stream(state, account, report_id, format)

    @delete(
        "/{report_id:str}",
        status_code=204,
        responses=problem_responses(403, 404, 503),
        summary="Delete a report and its rows",
    )
    async def remove(self, report_id: ReportId, account: SignedIn, state: State) -> None:
        if not await store.delete_report(state.db, account.id, report_id):
            raise not_found("report")

    @post(
        "/{report_id:str}/rerun",
        status_code=202,
        guards=[limit_report_creation],
        responses=problem_responses(403, 404, 409, 429, 503),
        response_headers=[LOCATION],
        summary="Compute a report again from the events as they are now",
    )
    async def rerun(self, report_id: ReportId, account: SignedIn, state: State) -> Response[ReportOut]:
        try:
            report = await restart_report(state, account, report_id)
        except store.ActiveReportExists as error:
            raise _conflict(error.active_report_id) from error
        if report is None:
            raise not_found("report")
        return _accepted(report)
