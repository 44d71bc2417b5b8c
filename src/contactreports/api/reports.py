"""Contact reports: create, poll, list, page rows, export, delete, rerun (the use cases are
`contactreports.reports`; their errors are answered as problems by api/errors.py)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import ResponseHeader, State
from litestar.params import FromQuery, JSONBody, Parameter
from litestar.response import Stream

from contactreports.api.auth import SignedIn
from contactreports.api.downloads import download_response
from contactreports.api.errors import problem_responses
from contactreports.api.limits import limit_report_creation
from contactreports.api.openapi import ExportOperation
from contactreports.api.parameters import Cursor, Limit, ReportId
from contactreports.exports import Format, RowPage
from contactreports.models import Report, Status
from contactreports.reports.lifecycle import delete_report, restart_report, start_report
from contactreports.reports.reading import export_rows, read_report, reports_page, rows_page
from contactreports.reports.spec import ReportIn, report_spec
from contactreports.reports.view import ReportOut, ReportPage, report_out

# Documented here, sent by `_accepted`: `value` only gives the document its type (a string).
LOCATION = ResponseHeader(
    name="Location",
    value="/api/reports/{id}",
    description="/api/reports/{id}: poll it",
    required=True,
    documentation_only=True,
)


def _accepted(report: Report) -> Response[ReportOut]:
    return Response(report_out(report), status_code=202, headers={"Location": f"/api/reports/{report.id}"})


class ReportController(Controller):
    path = "/reports"
    tags = ["reports"]

    @post(
        "/",
        operation_id="createReport",
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
        spec = report_spec(data, state.settings.max_window_days)
        return _accepted(await start_report(state, account, spec))

    @get("/", operation_id="listReports", responses=problem_responses(), summary="Reports, newest first")
    async def list(
        self,
        account: SignedIn,
        state: State,
        status: FromQuery[Status | None] = None,
        limit: Limit = 50,
        cursor: Cursor = None,
    ) -> ReportPage:
        return await reports_page(state, account, status, limit, cursor)

    @get("/{report_id:str}", operation_id="getReport", responses=problem_responses(404), summary="A report (poll this)")
    async def read(self, report_id: ReportId, account: SignedIn, state: State) -> ReportOut:
        return report_out(await read_report(state, account, report_id))

    @get(
        "/{report_id:str}/rows",
        operation_id="listReportRows",
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
    ) -> RowPage:
        return await rows_page(state, account, report_id, action or (), limit, cursor)

    @get(
        "/{report_id:str}/export",
        operation_id="exportReport",
        responses=problem_responses(404, 409, 422),
        operation_class=ExportOperation,
        summary="Download a done report's rows",
        description=(
            "CSV (`timestamp,campaign,action,details`, formula-like cells neutralised), NDJSON (the `/rows` "
            "objects) or XLSX, streamed as an attachment."
        ),
    )
    async def export(self, report_id: ReportId, account: SignedIn, state: State, format: FromQuery[Format]) -> Stream:
        return download_response(await export_rows(state, account, report_id, format))

    @delete(
        "/{report_id:str}",
        operation_id="deleteReport",
        status_code=204,
        responses=problem_responses(403, 404, 503),
        summary="Delete a report and its rows",
    )
    async def remove(self, report_id: ReportId, account: SignedIn, state: State) -> None:
        await delete_report(state, account, report_id)

    @post(
        "/{report_id:str}/rerun",
        operation_id="rerunReport",
        status_code=202,
        guards=[limit_report_creation],
        responses=problem_responses(403, 404, 409, 429, 503),
        response_headers=[LOCATION],
        summary="Compute a report again from the events as they are now",
    )
    async def rerun(self, report_id: ReportId, account: SignedIn, state: State) -> Response[ReportOut]:
        return _accepted(await restart_report(state, account, report_id))
