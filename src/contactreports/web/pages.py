"""The web page's routes: sign in and out, the reports list (live), rerun, delete."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import FormMultiDict
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Stream, Template
from litestar.static_files import create_static_files_router
from litestar.template import TemplateConfig

from contactreports.api.errors import ProblemError
from contactreports.api.pagination import Cursor, Limit
from contactreports.api.reports import ReportId, export_stream, report_out, reports_page, restart_report, rows_page
from contactreports.exports import Format
from contactreports.models import Account, format_ms
from contactreports.store import reports as store
from contactreports.store.accounts import account_for_key
from contactreports.store.rows import report_summary
from contactreports.web.search import create_from_form, form_context, over_report_limit, quick_ranges, typed
from contactreports.web.session import DatabaseKeyedSessions, session_middleware

HERE = Path(__file__).parent
# Reports per page of the list.
LIST_LIMIT = 50
# Rows per page of a report's table.
ROWS_LIMIT = 50
# Bars of the activity-over-time chart: equal slices from the first activity to the last.
CHART_BARS = 30


async def _signed_in(request: Request) -> Account | None:
    """The session's account; a session whose key no longer names one is cleared."""
    api_key = request.session.get("api_key")
    if not api_key:
        return None
    account = await account_for_key(request.app.state.db, api_key)
    if account is None:
        request.clear_session()
    return account


def _back_to_list(request: Request, notice: str | None = None) -> Redirect:
    if notice:
        request.session["notice"] = notice  # shown once, by the next page of the list
    return Redirect("/", status_code=303)


async def _list_context(request: Request, account: Account, cursor: str | None) -> dict[str, Any]:
    state = request.app.state
    try:
        page = await reports_page(state, account, None, LIST_LIMIT, cursor)
    except ProblemError:  # a cursor edited by hand, or another account's: the newest reports instead
        page, cursor = await reports_page(state, account, None, LIST_LIMIT, None), None
    return {
        "account": account,
        "reports": page.items,
        "cursor": cursor,
        "next_cursor": page.next_cursor,
        "active_report_id": await store.active_report_id(state.db, account.id),
    }


@get("/")
async def index(request: Request, cursor: Cursor = None) -> Template:
    account = await _signed_in(request)
    if account is None:
        return Template("sign_in.html", context={"error": None})
    context = await _list_context(request, account, cursor)
    return Template("reports.html", context={**context, "notice": request.session.pop("notice", None)})


@get("/reports/live")
async def live_list(request: Request, cursor: Cursor = None) -> Template | Response[None]:
    """The list alone, as the page's script fetches it to stay current without reloading."""
    account = await _signed_in(request)
    if account is None:
        return Response(None, status_code=401)
    return Template("_reports.html", context=await _list_context(request, account, cursor))


@post("/sign-in")
async def sign_in(request: Request) -> Template | Redirect:
    api_key = str((await request.form()).get("api_key", "")).strip()
    if not api_key or await account_for_key(request.app.state.db, api_key) is None:
        error = "Enter your API key." if not api_key else "That API key is not valid. Check it and try again."
        return Template("sign_in.html", context={"error": error}, status_code=400)
    request.set_session({"api_key": api_key})
    return Redirect("/", status_code=303)


@post("/sign-out")
async def sign_out(request: Request) -> Redirect:
    request.clear_session()
    return Redirect("/", status_code=303)


@get("/reports/new")
async def new_search(request: Request) -> Template | Redirect:
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
    return Template("new_search.html", context={"account": account, **form_context(typed(FormMultiDict()), {})})


@post("/reports/new")
async def create_search(request: Request) -> Template | Redirect:
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
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


async def _report_template(request: Request, report_id: str, template: str) -> Template | Redirect:
    """A page about one of the signed-in account's reports."""
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
    report = await store.get_report(request.app.state.db, account.id, report_id)
    if report is None:
        return _back_to_list(request, "That report no longer exists.")
    return Template(template, context={"account": account, "report": report_out(report)})


def _sentence(error: ProblemError) -> str:
    """A problem as the page says it: its field errors' messages (an unknown action, a bad cursor), or its detail."""
    errors = error.problem.errors or []
    return " ".join(f"{e.message[:1].upper()}{e.message[1:]}." for e in errors) or str(error)


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
    request: Request, report_id: ReportId, action: str | None = None, limit: Limit = ROWS_LIMIT, cursor: Cursor = None
) -> Template | Redirect:
    """A report: its search and status; once done, its summary, rows (filter, pages) and exports."""
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
    state = request.app.state
    report = await store.get_report(state.db, account.id, report_id)
    if report is None:
        return _back_to_list(request, "That report no longer exists.")
    context: dict[str, Any] = {"account": account, "report": report_out(report), "action": action, "limit": limit}
    if report.status == "done":
        try:
            page = await rows_page(state, account, report.id, [action] if action else (), limit, cursor)
        except ProblemError as error:
            context["problem"] = _sentence(error)
        else:
            rows = [(row, _details(row.details)) for row in page.items]
            context.update(rows=rows, next_cursor=page.next_cursor, first_page=cursor is not None)
        summary = await report_summary(state.db, report.pk, report.run, CHART_BARS)
        first, last = (None if ms is None else format_ms(ms) for ms in (summary.first, summary.last))
        context.update(counts=summary.counts, first=first, last=last)
        if summary.counts:
            context["chart"] = {"bars": summary.activity, "top": max(summary.activity)}
        context["filter_actions"] = sorted(set(report.spec.actions) | set(summary.counts))
    return Template("report.html", context=context)


@get("/reports/{report_id:str}/export")
async def export(request: Request, report_id: ReportId, format: Format) -> Stream | Redirect:
    """The API's export of a done report, downloaded through the page's session."""
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
    try:
        return await export_stream(request.app.state, account, report_id, format)
    except ProblemError as error:
        request.session["notice"] = str(error)
        return Redirect("/", status_code=303)


@post("/reports/{report_id:str}/rerun")
async def rerun(request: Request, report_id: ReportId) -> Redirect:
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
    refused = await over_report_limit(request, account)  # as the API's rerun: one more report
    if refused:
        return _back_to_list(request, refused)
    try:
        report = await restart_report(request.app.state, account, report_id)
    except store.ActiveReportExists:
        return _back_to_list(request, "A report is still running: wait for it to finish, or delete it.")
    if report is None:
        return _back_to_list(request, "That report no longer exists.")
    return _back_to_list(request, f"The report for {report.spec.email} is queued again.")


@get("/reports/{report_id:str}/delete")
async def confirm_delete(request: Request, report_id: ReportId) -> Template | Redirect:
    return await _report_template(request, report_id, "confirm_delete.html")


@post("/reports/{report_id:str}/delete")
async def delete(request: Request, report_id: ReportId) -> Redirect:
    account = await _signed_in(request)
    if account is None:
        return Redirect("/", status_code=303)
    deleted = await store.delete_report(request.app.state.db, account.id, report_id)
    return _back_to_list(request, "The report is deleted." if deleted else "That report no longer exists.")


def when(timestamp: str | None) -> str:
    """An API timestamp (2026-03-01T09:30:00.000Z) as people read it: 2026-03-01 09:30:00 UTC."""
    return f"{timestamp[:10]} {timestamp[11:19]} UTC" if timestamp else "—"


def _add_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["when"] = when


TEMPLATES = TemplateConfig(directory=HERE / "templates", engine=JinjaTemplateEngine, engine_callback=_add_filters)


def web_routers(sessions: DatabaseKeyedSessions) -> list[Router]:
    """The page's routes (with the session cookie) and its static files; none in the OpenAPI document."""
    pages = Router(
        "/",
        route_handlers=[
            *(index, live_list, sign_in, sign_out, new_search, create_search),
            *(report_page, export, rerun, confirm_delete, delete),
        ],
        middleware=[session_middleware(sessions)],
        include_in_schema=False,
    )
    static = create_static_files_router("/static", directories=[HERE / "static"], include_in_schema=False)
    return [pages, static]
