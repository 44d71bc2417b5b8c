"""The new-search form: what was typed, checked as the API checks it (`report_spec`, the strict body
conversion, the rate limit), and started like `POST /api/reports`.

Dates: people pick whole days in UTC and the end day is inclusive ("to 2026-03-31" includes all of
that day). The API's window is half-open, [start, end): `start` is the start day at 00:00:00Z and
`end` is the day AFTER the end day at 00:00:00Z. So 2026-03-01 .. 2026-03-31 searches
[2026-03-01T00:00:00Z, 2026-04-01T00:00:00Z).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar import Request
from litestar.datastructures import FormMultiDict

from contactreports.catalogue import CATEGORIES
from contactreports.conversion import convert_body
from contactreports.limits import RateLimited, RateLimits
from contactreports.models import Account, InvalidFields, Report
from contactreports.reports.lifecycle import start_report
from contactreports.reports.spec import ReportIn, report_spec
from contactreports.store import reports as store

ONE_DAY = timedelta(days=1)


def quick_ranges(today: date) -> list[tuple[str, str, str]]:
    """(label, first day, last day) of each quick range, both days inclusive, ending today (UTC)."""
    ranges = [(f"Last {days} days", today - timedelta(days=days - 1)) for days in (7, 30, 90)]
    ranges.append(("This year", today.replace(month=1, day=1)))
    return [(label, first.isoformat(), today.isoformat()) for label, first in ranges]


def form_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {"categories": CATEGORIES, "quick_ranges": quick_ranges(today), "values": values, "errors": errors}


def typed(form: FormMultiDict) -> dict[str, Any]:
    """The form as typed, to check it and to show it again."""
    return {
        "email": str(form.get("email", "")),
        "categories": [str(name) for name in form.getall("categories", [])],
        "actions": [str(name) for name in form.getall("actions", [])],
        "start": str(form.get("start", "")).strip(),
        "end": str(form.get("end", "")).strip(),
        "include_archived": form.get("include_archived") == "on",
    }


def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def _form_field(api_field: str) -> str:
    """Where an API error's field is shown in the form."""
    if api_field in ("email", "start", "end"):
        return api_field
    return "actions" if api_field.startswith(("actions", "categories")) else "form"


def as_sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."


def _window(values: dict[str, Any], errors: dict[str, str]) -> tuple[datetime, datetime]:
    """The API's [start, end) from the inclusive days; a missing or unreadable day is an error of the
    form (the API has no such case: its body always holds timestamps), and a stand-in keeps the other
    fields checked."""
    first, last = _day(values["start"]), _day(values["end"])
    for name, day, what in (("start", first, "a start date"), ("end", last, "an end date")):
        if day is None:
            errors[name] = f"Enter {what} as YYYY-MM-DD." if values[name] else f"Enter {what}."
    first = first or (last or datetime.now(UTC).date())
    last = last or first
    try:
        return _midnight(first), _midnight(last + ONE_DAY)
    except OverflowError:  # the last representable day
        return _midnight(first), _midnight(last)


async def over_report_limit(request: Request, account: Account) -> str | None:
    """The API's message if `account` may create no more reports now (the same per-account limit and
    count as `POST /api/reports` and its rerun), else None; a check that passes counts one report."""
    limits: RateLimits = request.app.state.rate_limits
    try:
        await limits.check("reports", account.id)
    except RateLimited as error:
        return str(error)
    return None


async def create_from_form(request: Request, account: Account, values: dict[str, Any]) -> Report | dict[str, str]:
    """The new report, or the errors to show by field ("form" for the form as a whole)."""
    errors: dict[str, str] = {}
    start, end = _window(values, errors)
    body = {key: values[key] for key in ("email", "categories", "actions", "include_archived")}
    state = request.app.state
    try:
        spec = report_spec(convert_body({**body, "start": start, "end": end}, ReportIn), state.settings.max_window_days)
    except InvalidFields as error:
        for field_error in error.errors:
            errors.setdefault(_form_field(field_error.field), as_sentence(field_error.message))
    if errors:
        return errors
    # The rate limit counts only searches that could start: fixing a typo costs nothing.
    refused = await over_report_limit(request, account)
    if refused:
        return {"form": refused}
    try:
        return await start_report(state, account, spec)
    except store.ActiveReportExists as error:
        active = await store.get_report(state.db, account.id, error.active_report_id)
        whose = f"the report for {active.spec.email}" if active else f"report {error.active_report_id}"
        return {
            "form": f"A report is still running ({whose}, {error.active_report_id}): one search at a time. "
            "Wait for it to finish, or delete it."
        }
