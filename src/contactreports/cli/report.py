"""`contactreports report ...`: create, watch, read, export, rerun and delete reports over HTTP.

A client of the API (client.py), not of the database: it works against any running service
with an API key. Output is for people by default and `--json` for scripts; every error is a
one-paragraph message on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import itertools
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta

import click
from tqdm import tqdm

from contactreports.cli.api_group import api_group, client_for, json_option, json_text
from contactreports.cli.client import PAGE_LIMIT, Client, Row
from contactreports.reports.view import ReportOut

FINISHED = ("done", "failed")
# Poll often at first (small reports finish in a fraction of a second), then back off so a
# long report costs the API a request every few seconds at most.
FIRST_POLL_SECONDS, MAX_POLL_SECONDS = 0.1, 2.0
RELATIVE = re.compile(r"^(\d+)([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
TIMESTAMP_WIDTH = len("2026-03-01T09:30:00.000Z")
MAX_CAMPAIGN_WIDTH = 40


report = api_group("report", "Contact reports through the HTTP API.")


def parse_moment(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `45m`, `2w` before `now`; or an ISO date or time (UTC when it has no offset)."""
    if match := RELATIVE.match(text.strip()):
        return now - timedelta(**{UNITS[match[2]]: int(match[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: expected e.g. 30d, 12h, 2026-01-31 or 2026-01-31T09:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Moment(click.ParamType):
    """A --since/--until value, checked while parsing so click's error names the option."""

    name = "time"

    def __init__(self, now: datetime):
        self.now = now

    def convert(self, value, param, ctx) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(value, self.now)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def wire_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def details_text(details: dict) -> str:
    """`url=https://…, type=hard`: readable at a glance, unlike the raw JSON object."""
    return ", ".join(f"{key}={value if isinstance(value, str) else json_text(value)}" for key, value in details.items())


def _batches(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def print_rows_table(rows: Iterable[Row]) -> None:
    """The rows as aligned columns, printed page by page: a report may have millions of rows,
    so the column widths come from the first page and later values may stick out."""
    count, widths = 0, None
    for batch in _batches(rows, PAGE_LIMIT):
        if widths is None:
            campaigns = [len(row.campaign.name) if row.campaign else 0 for row in batch]
            widths = (
                TIMESTAMP_WIDTH,
                min(max([len("campaign"), *campaigns]), MAX_CAMPAIGN_WIDTH),
                max(len("action"), *(len(row.action) for row in batch)),
            )
            click.echo(_table_line(widths, ("timestamp", "campaign", "action", "details")))
        for row in batch:
            campaign = row.campaign.name if row.campaign else ""
            click.echo(_table_line(widths, (row.occurred_at, campaign, row.action, details_text(row.details))))
        count += len(batch)
    click.echo(f"({count} row{'' if count == 1 else 's'})" if count else "(no rows)")


def _table_line(widths: tuple[int, ...], cells: tuple[str, ...]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=False)]
    return "  ".join([*padded, *cells[len(widths) :]]).rstrip()


def print_report(report: ReportOut) -> None:
    fields = [
        ("report", report.id),
        ("status", f"{report.status} ({report.progress.percent:g}%)"),
        ("email", report.email),
        ("actions", ", ".join(report.actions)),
        ("window", f"{report.start} .. {report.end}"),
        ("archived", "included" if report.include_archived else "left out"),
        ("rows", "-" if report.row_count is None else str(report.row_count)),
        ("created", report.created_at),
        ("started", report.started_at or "-"),
        ("finished", report.finished_at or "-"),
        ("attempts", str(report.attempts)),
    ]
    if report.error:
        fields.append(("error", report.error))
    for name, value in fields:
        click.echo(f"{name + ':':<10}{value}")


def wait_for(client: Client, report: ReportOut) -> ReportOut:
    """Poll until the report is done or failed, with a progress bar on stderr."""
    interval = FIRST_POLL_SECONDS
    bar_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}{postfix}"
    with tqdm(total=100, desc=f"report {report.id}", file=sys.stderr, bar_format=bar_format) as bar:
        try:
            while report.status not in FINISHED:
                bar.n = report.progress.percent
                bar.set_postfix_str(report.status)
                time.sleep(interval)
                interval = min(interval * 1.5, MAX_POLL_SECONDS)
                report = client.report(report.id)
        except KeyboardInterrupt:
            bar.close()
            # Stopping to watch does not stop the report: say how to pick it up again.
            raise click.ClickException(
                f"stopped waiting; report {report.id} goes on: contactreports report show {report.id} --wait"
            ) from None
        bar.n = report.progress.percent
        bar.set_postfix_str(report.status)
    return report


def _show(client: Client, report: ReportOut, *, wait: bool, as_json: bool) -> None:
    """The report; with `wait`, once finished, followed by its rows (or its error, exit 1)."""
    if wait:
        report = wait_for(client, report)
    if as_json:
        click.echo(json_text(report))
    else:
        print_report(report)
    if wait and report.status == "failed":
        raise click.ClickException(f"report {report.id} failed: {report.error}")
    if wait and not as_json:
        click.echo()
        print_rows_table(client.rows(report.id))


# One "now" per command run: `--since 30d` and the default `--until` are exactly 30 days apart.
NOW = Moment(datetime.now(UTC))
wait_option = click.option("--wait", is_flag=True, help="Show progress until done, then the rows.")


@report.command("create")
@click.option("--email", required=True, help="The contact's email address.")
@click.option("--category", "categories", multiple=True, help="Every action of a category (repeatable).")
@click.option("--action", "actions", multiple=True, help="One action, e.g. email.clicked (repeatable).")
@click.option("--since", type=NOW, default="30d", show_default=True, help="Start: 30d, 12h, 2w, or an ISO date/time.")
@click.option("--until", type=NOW, help="End (exclusive), same forms as --since; default now.")
@click.option("--include-archived", is_flag=True, help="Include the events of archived campaigns.")
@wait_option
@json_option
@click.pass_context
def create(ctx, email, categories, actions, since, until, include_archived, wait, as_json) -> None:
    """Start a report on one contact."""
    search = {
        "email": email,
        "categories": list(categories),
        "actions": list(actions),
        "start": wire_time(since),
        "end": wire_time(until or NOW.now),
        "include_archived": include_archived,
    }
    client = client_for(ctx)
    _show(client, client.create_report(search), wait=wait, as_json=as_json)


@report.command("list")
@click.option("--status", type=click.Choice(["queued", "processing", "done", "failed"]))
@click.option("--json", "as_json", is_flag=True, help="One JSON report per line.")
@click.pass_context
def list_reports(ctx, status, as_json) -> None:
    """The account's reports, newest first."""
    count = 0
    for count, item in enumerate(client_for(ctx).reports(status), start=1):
        if as_json:
            click.echo(json_text(item))
            continue
        if count == 1:
            click.echo(f"{'id':<36}  {'status':<10}  {'progress':>8}  {'rows':>7}  {'created':<24}  email")
        rows = "-" if item.row_count is None else str(item.row_count)
        percent = f"{item.progress.percent:.0f}%"
        click.echo(f"{item.id:<36}  {item.status:<10}  {percent:>8}  {rows:>7}  {item.created_at:<24}  {item.email}")
    if count == 0 and not as_json:
        click.echo("(no reports)")


def _report_command(name: str, help_text: str, fetch: Callable[[Client, str], ReportOut]) -> click.Command:
    """`show` and `rerun`: one report by id (read, or re-run first), shown like `create` shows it."""

    @report.command(name, help=help_text)
    @click.argument("report_id")
    @wait_option
    @json_option
    @click.pass_context
    def command(ctx, report_id, wait, as_json) -> None:
        client = client_for(ctx)
        _show(client, fetch(client, report_id), wait=wait, as_json=as_json)

    return command


show = _report_command("show", "One report; with --wait, its progress until done, then its rows.", Client.report)
rerun = _report_command("rerun", "Compute a report again from the events as they are now.", Client.rerun)


@report.command("rows")
@click.argument("report_id")
@click.option("--action", help="Only this action, e.g. email.clicked.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many rows (default: all).")
@click.option("--json", "as_json", is_flag=True, help="One JSON row per line (the API's row objects).")
@click.pass_context
def rows(ctx, report_id, action, limit, as_json) -> None:
    """A done report's rows, oldest first."""
    page_size = min(limit or PAGE_LIMIT, PAGE_LIMIT)
    found = itertools.islice(client_for(ctx).rows(report_id, action, page_size), limit)
    if not as_json:
        print_rows_table(found)
        return
    for row in found:
        click.echo(json_text(row))


@report.command("export")
@click.argument("report_id")
@click.option("--format", "file_format", type=click.Choice(["csv", "ndjson", "xlsx"]), default="csv", show_default=True)
@click.option("-o", "--output", help="The file to write ('-' for stdout); default: the name the API suggests.")
@click.pass_context
def export(ctx, report_id, file_format, output) -> None:
    """Download a done report's rows as a file."""
    with client_for(ctx).export(report_id, file_format) as (suggested, chunks):
        name = output or suggested
        written = 0
        with nullcontext(sys.stdout.buffer) if name == "-" else open(name, "wb") as target:
            for chunk in chunks:
                written += target.write(chunk)
    click.echo(f"wrote {written:,} bytes to {'stdout' if name == '-' else name}", err=True)


@report.command("delete")
@click.argument("report_id")
@click.pass_context
def delete(ctx, report_id) -> None:
    """Delete a report and its rows (a running one stops)."""
    client_for(ctx).delete(report_id)
    click.echo(f"deleted report {report_id}")
