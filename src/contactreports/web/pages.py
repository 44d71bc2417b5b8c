"""The web page's routes: sign in and out, the reports list (live), rerun, delete."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import FormMultiDict
from litestar.di import Provide
from litestar.params import FromQuery
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Stream, Template
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from contactreports.api.auth import SignedIn
from contactreports.api.downloads import download_response
from contactreports.api.errors import EXCEPTION_HANDLERS, Problem
from contactreports.api.parameters import Cursor, Limit, ReportId
from contactreports.catalogue import ACTION_CODES
from contactreports.exports import ExportTooLarge, Format
from contactreports.models import Account, Caller, FieldError, InvalidFields, Report, Summary, format_ms
from contactreports.reports.errors import ReportNotFound, ReportNotReady
from contactreports.reports.lifecycle import delete_report, restart_report
from contactreports.reports.reading import export_rows, read_report, reports_page, rows_page
from contactreports.reports.view import report_out
from contactreports.store import reports as store
from contactreports.store.rows import report_summary
from contactreports.web.search import (
    as_sentence,
    create_from_form,
    form_context,
    over_report_limit,
    quick_ranges,
    typed,
)
from contactreports.web.security import PAGE_CACHE, PAGE_HEADERS, few_form_fields, same_origin_only
from contactreports.web.session import (
    DatabaseKeyedSessions,
    SignedInCaller,
    SignedOut,
    full_access_only,
    provide_account,
    provide_caller,
    session_middleware,
    sign_in,
    sign_out,
    signed_in,
)

HERE = Path(__file__).parent
# Reports per page of the list.
LIST_LIMIT = 50
# Rows per page of a report's table.
ROWS_LIMIT = 50
# Bars of the activity-over-time chart: equal slices from the first activity to the last.
CHART_BARS = 30


def _back_to_list(request: Request, notice: str | None = None) -> Redirect:
    return _redirect(request, "/", notice)


def _redirect(request: Request, to: str, notice: str | None = None) -> Redirect:
    if notice:
        request.session["notice"] = notice  # shown once, by the next page
    return Redirect(to, status_code=303)


async def _list_context(request: Request, caller: Caller, cursor: str | None) -> dict[str, Any]:
    state, account = request.app.state, caller.account
    try:
        page = await reports_page(state, account, None, LIST_LIMIT, cursor)
    except InvalidFields:  # a cursor edited by hand, or another account's: the newest reports instead
        page, cursor = await reports_page(state, account, None, LIST_LIMIT, None), None
    return {
        "account": account,
        "reports": page.items,
        "cursor": cursor,
        "next_cursor": page.next_cursor,
        "active_report_id": await store.active_report_id(state.db, account.id),
        "read_only": caller.read_only,
    }


@get("/")
async def index(request: Request, cursor: Cursor = None) -> Template:
    caller = await signed_in(request)
    if caller is None:
        return _sign_in_form(request, None)
    context = await _list_context(request, caller, cursor)
    return Template("reports.html", context={**context, "notice": request.session.pop("notice", None)})


def _sign_in_form(request: Request, error: str | None) -> Template:
    # Over plain HTTP to another host, the browser drops the Secure cookie: say why signing in fails.
    url = request.url
    plain_http = url.scheme == "http" and url.hostname not in ("localhost", "127.0.0.1", "::1")
    insecure = plain_http and request.app.state.settings.web_secure_cookie
    return Template("sign_in.html", context={"error": error, "insecure": insecure}, status_code=400 if error else 200)


@get("/reports/live")
async def live_list(request: Request, caller: SignedInCaller, cursor: Cursor = None) -> Template:
    """The list alone, as the page's script fetches it to stay current without reloading."""
    return Template("_reports.html", context=await _list_context(request, caller, cursor))


@post("/sign-in")
async def sign_in_form(request: Request) -> Template | Redirect:
    api_key = str((await request.form()).get("api_key", "")).strip()
    if not api_key or not await sign_in(request, api_key):
        error = "Enter your API key." if not api_key else "That API key is not valid. Check it and try again."
        return _sign_in_form(request, error)
    return Redirect("/", status_code=303)


@post("/sign-out")
async def sign_out_form(request: Request) -> Redirect:
    await sign_out(request)
    return Redirect("/", status_code=303)


@get("/reports/new", guards=[full_access_only])
async def new_search(account: SignedIn) -> Template:
    return Template("new_search.html", context={"account": account, **form_context(typed(FormMultiDict()), {})})


@post("/reports/new", guards=[full_access_only])
async def create_search(request: Request, account: SignedIn) -> Template | Redirect:
    form = await request.form()
    values = typed(form)
    quick = form.get("quick")
    if quick is not None:  # a quick range without JavaScript: fill the dates, check nothing yet
        for label, first, last in quick_ranges(datetime.now(UTC).date()):
            if label == quick:
                values.update(start=first, end=last)
        return Template("new_search.html", context={"account": account, **form_context(values, {})})
    outcome = await create_from_form(request, account, values)
    if isinstance(outcome, dict):
        context = {"account": account, **form_context(values, outcome)}
        return Template("new_search.html", context=context, status_code=400)
    return _back_to_list(request, f"The report for {outcome.spec.email} is queued.")


def _sentences(errors: Iterable[FieldError]) -> str:
    return " ".join(as_sentence(error.message) for error in errors)


def sentence(problem: Problem) -> str:
    """A problem as a page says it: its field errors' messages (an unknown action, a bad cursor), or its detail."""
    return _sentences(problem.errors or []) or problem.detail


def _refusal(error: Exception) -> str:
    """A use case's refusal as a page says it, like `sentence`."""
    return _sentences(error.errors) if isinstance(error, InvalidFields) else str(error)


def _details(raw: msgspec.Raw) -> list[tuple[str, str, str | None]]:
    """A row's details as (key, text, link): a web URL is a link; anything else is text, key: value."""
    details = msgspec.json.decode(raw)
    shown = []
    for key, value in details.items():
        text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        link = text if isinstance(value, str) and text.lower().startswith(("https://", "http://")) else None
        shown.append((key, text, link))
    return shown


@get("/reports/{report_id:str}")
async def report_page(
    request: Request,
    account: SignedIn,
    report_id: ReportId,
    action: FromQuery[str | None] = None,
    limit: Limit = ROWS_LIMIT,
    cursor: Cursor = None,
) -> Template:
    """A report: its search and status; once done, its summary, rows (filter, pages) and exports."""
    state = request.app.state
    report = await read_report(state, account, report_id)
    context: dict[str, Any] = {
        "account": account,
        "report": report_out(report),
        "action": action,
        "limit": limit,
        "notice": request.session.pop("notice", None),
    }
    if report.status == "done":
        summary = await report_summary(state.db, report, CHART_BARS)
        first, last = (None if ms is None else format_ms(ms) for ms in (summary.first, summary.last))
        context.update(counts=summary.counts, first=first, last=last)
        if summary.counts:
            context["chart"] = {"bars": summary.activity, "top": max(summary.activity)}
        context["filter_actions"] = sorted(set(report.spec.actions) | set(summary.counts))
        context.update(await _rows_context(request, account, report, summary, action, limit, cursor))
    return Template("report.html", context=context)


async def _rows_context(
    request: Request,
    account: Account,
    report: Report,
    summary: Summary,
    action: str | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """The table's page of rows, or what is wrong with the link that asked for it."""
    if action in ACTION_CODES and action not in summary.counts and cursor is None:
        return {"rows": [], "next_cursor": None}  # no need to look: the summary counted none
    try:
        page = await rows_page(request.app.state, account, report.id, [action] if action else (), limit, cursor)
    except (InvalidFields, ReportNotFound, ReportNotReady) as error:
        return {"problem": _refusal(error)}
    rows = [(row, _details(row.details)) for row in page.items]
    return {"rows": rows, "next_cursor": page.next_cursor, "on_later_page": cursor is not None}


@get("/reports/{report_id:str}/export")
async def export(
    request: Request, account: SignedIn, report_id: ReportId, format: FromQuery[Format]
) -> Stream | Redirect:
    """The API's export of a done report, downloaded through the page's session."""
    try:
        download = await export_rows(request.app.state, account, report_id, format)
    except (ReportNotReady, ExportTooLarge) as error:
        return _redirect(request, f"/reports/{report_id}", str(error))
    return download_response(download)


@post("/reports/{report_id:str}/rerun", guards=[full_access_only])
async def rerun(request: Request, account: SignedIn, report_id: ReportId) -> Redirect:
    refused = await over_report_limit(request, account)  # as the API's rerun: one more report
    if refused:
        return _back_to_list(request, refused)
    try:
        report = await restart_report(request.app.state, account, report_id)
    except store.ActiveReportExists:
        return _back_to_list(request, "A report is still running: wait for it to finish, or delete it.")
    return _back_to_list(request, f"The report for {report.spec.email} is queued again.")


@get("/reports/{report_id:str}/delete", guards=[full_access_only])
async def confirm_delete(request: Request, account: SignedIn, report_id: ReportId) -> Template:
    report = await read_report(request.app.state, account, report_id)
    return Template("confirm_delete.html", context={"account": account, "report": report_out(report)})


@post("/reports/{report_id:str}/delete", guards=[full_access_only])
async def delete(request: Request, account: SignedIn, report_id: ReportId) -> Redirect:
    await delete_report(request.app.state, account, report_id)
    return _back_to_list(request, "The report is deleted.")


def _to_sign_in(request: Request, _: SignedOut) -> Redirect:
    return Redirect("/", status_code=303)


def _to_list(request: Request, _: ReportNotFound) -> Redirect:
    """The report was deleted, or is another account's: back to the list, which says so."""
    return _back_to_list(request, "That report no longer exists.")


def _error_page(api_handler: Callable[[Request, Any], Response[Problem]]) -> Callable[[Request, Any], Template]:
    """The API's answer to an error (its status, its words), as a page."""

    def error_page(request: Request, error: Any) -> Template:
        response = api_handler(request, error)
        problem = response.content
        context = {"status": problem.status, "message": sentence(problem)}
        return Template("error.html", context=context, status_code=problem.status, headers=response.headers)

    return error_page


def when(timestamp: str | None) -> str:
    """An API timestamp (2026-03-01T09:30:00.000Z) as people read it: 2026-03-01 09:30:00 UTC."""
    return f"{timestamp[:10]} {timestamp[11:19]} UTC" if timestamp else "—"


def _add_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["when"] = when


TEMPLATES = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_add_filters)


def web_routers(sessions: DatabaseKeyedSessions, max_form_bytes: int) -> list[Router]:
    """The page's routes (with the session cookie) and its static files; none in the OpenAPI document.

    The forms' bodies are small: `max_form_bytes` bounds them (413), far below the API's bodies.
    """
    pages = Router(
        "/",
        route_handlers=[
            *(index, live_list, sign_in_form, sign_out_form, new_search, create_search),
            *(report_page, export, rerun, confirm_delete, delete),
        ],
        middleware=[session_middleware(sessions)],
        guards=[same_origin_only, few_form_fields],
        request_max_body_size=max_form_bytes,
        dependencies={"account": Provide(provide_account), "caller": Provide(provide_caller)},
        exception_handlers={
            **{kind: _error_page(handler) for kind, handler in EXCEPTION_HANDLERS.items()},
            SignedOut: _to_sign_in,
            ReportNotFound: _to_list,
        },
        cache_control=PAGE_CACHE,
        response_headers=PAGE_HEADERS,
        include_in_schema=False,
    )
    static = create_static_files_router("/static", directories=[HERE / "static"], include_in_schema=False)
    return [pages, static]
