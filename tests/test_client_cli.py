"""`contactreports report ...` as a user runs it: a subprocess against the live API and worker."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click import ClickException

from conftest import PAUSED_QUEUE, ApiAccount, service_env, start_api
from contactreports.cli import report as cli_report
from contactreports.cli.embedded_redis import free_port
from contactreports.cli.report import parse_moment
from contactreports.reports.view import Progress, ReportOut
from helpers import all_rows, create_report, ingest, put_campaign

WINDOW = ["--since", "2026-01-01", "--until", "2027-01-01"]
EVENTS = [
    {"id": "1", "email": "ann@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:30:00Z",
     "campaign_id": "spring"},
    {"id": "2", "email": "Ann@Example.com ", "action": "email.clicked", "occurred_at": "2026-03-01T09:31:00+01:00",
     "campaign_id": "spring", "details": {"url": "https://shop.example/sale"}},
    {"id": "3", "email": "ann@example.com", "action": "email.bounced", "occurred_at": "2026-04-02T00:00:00Z",
     "details": {"type": "hard", "code": 550}},
    {"id": "4", "email": "bob@example.com", "action": "email.opened", "occurred_at": "2026-03-01T09:30:00Z"},
    {"id": "5", "email": "ann@example.com", "action": "sms.sent", "occurred_at": "2026-03-01T09:30:00Z"},
    {"id": "6", "email": "ann@example.com", "action": "email.opened", "occurred_at": "2025-12-31T23:59:59Z"},
]  # fmt: skip
TABLE = (
    "timestamp                 campaign     action         details\n"
    "2026-03-01T08:31:00.000Z  Spring sale  email.clicked  url=https://shop.example/sale\n"
    "2026-03-01T09:30:00.000Z  Spring sale  email.opened\n"
    "2026-04-02T00:00:00.000Z               email.bounced  type=hard, code=550\n"
    "(3 rows)\n"
)


def run(
    *args: str,
    url: str,
    key: str | None,
    cwd: Path | None = None,
    text: bool = True,
    group: str = "report",
    stdin: str | None = None,
) -> subprocess.CompletedProcess:
    """`contactreports <group> ...` as a user runs it: settings from the environment only (`text=False`: output
    as bytes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONTACTREPORTS_")}
    env |= {"CONTACTREPORTS_URL": url, **({"CONTACTREPORTS_API_KEY": key} if key else {})}
    return subprocess.run(
        [sys.executable, "-m", "contactreports", group, *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=text,
        timeout=60,
    )


def ok(result: subprocess.CompletedProcess) -> str:
    assert (result.returncode, result.stderr if result.returncode else "") == (0, ""), result.stderr
    return result.stdout


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> None:
    await put_campaign(client, "spring", "Spring sale")
    await ingest(client, EVENTS)


@pytest.fixture
async def done_report(api: str, account: ApiAccount, seeded: None) -> str:
    """A done report over EVENTS, created and waited for by the CLI."""
    out = ok(run("create", "--email", "ann@example.com", "--category", "email", *WINDOW, "--wait", "--json",
                 url=api, key=account.api_key))  # fmt: skip
    report = json.loads(out)
    assert (report["status"], report["row_count"]) == ("done", 3)
    return report["id"]


@pytest.fixture(scope="module")
def limited_api(database_url: str, redis_url: str, logs: Path) -> Iterator[str]:
    """An API allowing one report a minute per account, with no worker: its reports stay queued."""
    env = service_env(database_url, redis_url, queue_name=PAUSED_QUEUE + ":limited")
    env["CONTACTREPORTS_REPORT_RATE_LIMIT"] = "1/minute"
    process, url = start_api(env, logs, "limited-api")
    yield url
    process.stop()


async def test_create_wait_shows_progress_then_the_rows_as_a_table(api: str, account: ApiAccount, seeded: None) -> None:
    result = run("create", "--email", " ANN@example.com", "--category", "email", *WINDOW, "--wait",
                 url=api, key=account.api_key)  # fmt: skip

    out = ok(result)
    report = (await httpx.AsyncClient().get(f"{api}/api/reports", headers=account.headers)).json()["items"][0]
    assert out.startswith(f"report:   {report['id']}\nstatus:   done (100%)\nemail:    ann@example.com\n")
    assert "rows:     3\n" in out
    assert out.endswith("\n\n" + TABLE)
    assert f"report {report['id']}: 100%" in result.stderr and "done" in result.stderr


async def test_list_show_and_rows_for_people_and_for_scripts(
    api: str, account: ApiAccount, client: httpx.AsyncClient, done_report: str
) -> None:
    key = account.api_key
    api_report = (await client.get(f"/api/reports/{done_report}")).json()

    listed = ok(run("list", url=api, key=key)).splitlines()
    listed_json = ok(run("list", "--json", url=api, key=key))
    shown = ok(run("show", done_report, "--json", url=api, key=key))
    rows_json = ok(run("rows", done_report, "--json", url=api, key=key))
    clicks = ok(run("rows", done_report, "--action", "email.clicked", url=api, key=key))
    first = ok(run("rows", done_report, "--limit", "1", "--json", url=api, key=key))

    assert listed[0].split() == ["id", "status", "progress", "rows", "created", "email"]
    assert listed[1].split() == [done_report, "done", "100%", "3", api_report["created_at"], "ann@example.com"]
    assert len(listed) == 2
    assert [json.loads(line) for line in listed_json.splitlines()] == [api_report]
    assert json.loads(shown) == api_report
    assert [json.loads(line) for line in rows_json.splitlines()] == await all_rows(client, done_report)
    assert clicks == "\n".join([*TABLE.splitlines()[:2], "(1 row)"]) + "\n"
    assert [json.loads(line) for line in first.splitlines()] == (await all_rows(client, done_report))[:1]


async def test_export_writes_the_apis_bytes_to_the_suggested_file_or_the_given_one(
    api: str, account: ApiAccount, client: httpx.AsyncClient, done_report: str, tmp_path: Path
) -> None:
    suggested = run("export", done_report, url=api, key=account.api_key, cwd=tmp_path)
    named = run("export", done_report, "--format", "ndjson", "-o", "mine.ndjson", url=api, key=account.api_key,
                cwd=tmp_path)  # fmt: skip
    to_stdout = run("export", done_report, "-o", "-", url=api, key=account.api_key, text=False)

    csv = (await client.get(f"/api/reports/{done_report}/export", params={"format": "csv"})).content
    ndjson = (await client.get(f"/api/reports/{done_report}/export", params={"format": "ndjson"})).content
    assert csv.startswith(b"timestamp,campaign,action,details") and csv.count(b"\n") == 4
    assert (suggested.returncode, suggested.stdout) == (0, "")
    assert suggested.stderr == f"wrote {len(csv):,} bytes to contact-report-{done_report}.csv\n"
    assert (tmp_path / f"contact-report-{done_report}.csv").read_bytes() == csv
    assert named.returncode == 0 and (tmp_path / "mine.ndjson").read_bytes() == ndjson
    assert to_stdout.stdout == csv


async def test_rerun_sees_new_events_then_delete_makes_it_a_clear_404(
    api: str, account: ApiAccount, client: httpx.AsyncClient, done_report: str
) -> None:
    await ingest(client, [{"email": "ann@example.com", "action": "email.sent", "occurred_at": "2026-05-01T00:00:00Z"}])

    rerun = ok(run("rerun", done_report, "--wait", url=api, key=account.api_key))
    deleted = ok(run("delete", done_report, url=api, key=account.api_key))
    shown = run("show", done_report, url=api, key=account.api_key)

    assert rerun.endswith(TABLE.replace("(3 rows)", "2026-05-01T00:00:00.000Z               email.sent\n(4 rows)"))
    assert f"report:   {done_report}\n" in rerun
    assert deleted == f"deleted report {done_report}\n"
    assert (shown.returncode, shown.stdout, shown.stderr) == (1, "", "Error: Not Found (404): No such report.\n")


def test_a_second_report_while_one_is_active_names_the_active_one(
    paused_api: str, account: ApiAccount, tmp_path: Path
) -> None:
    first = json.loads(ok(run("create", "--email", "ann@example.com", "--category", "email", "--json",
                              url=paused_api, key=account.api_key)))  # fmt: skip

    second = run("create", "--email", "ann@example.com", "--category", "sms", url=paused_api, key=account.api_key)
    export = run("export", first["id"], url=paused_api, key=account.api_key, cwd=tmp_path)

    assert first["status"] == "queued"
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr.startswith(f"Error: Conflict (409): Report {first['id']} is still queued or processing")
    assert second.stderr.endswith(f"\nFollow it with: contactreports report show {first['id']} --wait\n")
    assert export.returncode == 1 and export.stderr.startswith(f"Error: Conflict (409): Report {first['id']} is queued")
    assert list(tmp_path.iterdir()) == []  # no empty file left behind by a refused export


async def test_invalid_searches_show_every_field_error(
    api: str, account: ApiAccount, client: httpx.AsyncClient
) -> None:
    result = run("create", "--email", "not an address", "--action", "email.lost", "--since", "2026-02-01",
                 "--until", "2026-01-01", url=api, key=account.api_key)  # fmt: skip
    bad_since = run("create", "--email", "ann@example.com", "--category", "email", "--since", "last week",
                    url=api, key=account.api_key)  # fmt: skip

    same_search = {"email": "not an address", "actions": ["email.lost"], "categories": [], "include_archived": False,
                   "start": "2026-02-01T00:00:00.000Z", "end": "2026-01-01T00:00:00.000Z"}  # fmt: skip
    problem = (await client.post("/api/reports", json=same_search)).json()
    assert problem["status"] == 400 and len(problem["errors"]) > 1, problem
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines() == [
        "Error: Bad Request (400): the request is invalid",
        *(f"  {error['field']}: {error['message']}" for error in problem["errors"]),
    ]
    assert bad_since.returncode == 2
    assert "Invalid value for '--since': 'last week': expected e.g. 30d" in bad_since.stderr


def test_bad_key_missing_key_and_a_service_that_is_down_are_clear_errors(api: str) -> None:
    bad_key = run("list", url=api, key="cr_not_a_key")
    no_key = run("list", url=api, key=None)
    down_url = f"http://127.0.0.1:{free_port()}"
    down = run("show", "x", url=down_url, key="cr_any")

    assert bad_key.returncode == 1 and bad_key.stderr.startswith("Error: Unauthorized (401): ")
    assert bad_key.stderr.endswith("\nCheck the API key (--api-key or CONTACTREPORTS_API_KEY).\n")
    assert (no_key.returncode, no_key.stderr) == (
        1,
        "Error: no API key: set CONTACTREPORTS_API_KEY or pass --api-key\n",
    )
    assert down.returncode == 1
    assert down.stderr.startswith(f"Error: cannot reach the contactreports API at {down_url} (")
    assert "Start it with `contactreports up`" in down.stderr
    assert "Traceback" not in bad_key.stderr + no_key.stderr + down.stderr


def test_too_many_reports_says_when_to_retry(limited_api: str, account: ApiAccount) -> None:
    search = ["create", "--email", "ann@example.com", "--category", "email", "--json"]
    first = json.loads(ok(run(*search, url=limited_api, key=account.api_key)))
    ok(run("delete", first["id"], url=limited_api, key=account.api_key))

    limited = run(*search, url=limited_api, key=account.api_key)

    assert limited.returncode == 1 and limited.stderr.startswith("Error: Too Many Requests (429): ")
    retry = limited.stderr.splitlines()[-1]
    assert retry.startswith("Retry after ") and retry.endswith(" s.") and int(retry.split()[2]) > 0


def test_since_and_until_accept_relative_and_iso_times() -> None:
    now = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)

    assert parse_moment("30d", now) == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_moment("12h", now) == datetime(2026, 3, 31, 0, 0, tzinfo=UTC)
    assert parse_moment("2w", now) == datetime(2026, 3, 17, 12, 0, tzinfo=UTC)
    assert parse_moment("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_moment("2026-01-31T09:00:00+01:00", now) == datetime(2026, 1, 31, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="expected e.g. 30d"):
        parse_moment("yesterday", now)


async def test_relative_since_finds_recent_events(api: str, account: ApiAccount, client: httpx.AsyncClient) -> None:
    # A minute ago: inside `--since 1h` and before the default `--until` (now, exclusive).
    recent = (datetime.now(UTC) - timedelta(minutes=1)).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    await ingest(client, [{"email": "ann@example.com", "action": "email.opened", "occurred_at": recent}])

    out = ok(run("create", "--email", "ann@example.com", "--action", "email.opened", "--since", "1h", "--wait",
                 url=api, key=account.api_key))  # fmt: skip

    assert out.endswith(f"\n{recent[:-1]}.000Z            email.opened\n(1 row)\n")


class ScriptedClient:
    """Answers each poll with the next of `reports`: the progress a real run reports, step by step."""

    def __init__(self, reports: list[ReportOut]):
        self.polls = iter(reports)

    def report(self, report_id: str) -> ReportOut:
        return next(self.polls)

    def rows(self, report_id: str):
        return iter([])


def at(status: str, percent: float, error: str | None = None) -> ReportOut:
    return ReportOut(
        id="r1", email="ann@example.com", actions=["email.opened"], start="2026-01-01T00:00:00.000Z",
        end="2027-01-01T00:00:00.000Z", include_archived=False, status=status,
        progress=Progress(scanned=int(percent), total=100, percent=percent), row_count=None, error=error,
        attempts=1, created_at="2026-01-01T00:00:00.000Z", started_at=None, finished_at=None,
    )  # fmt: skip


def test_the_progress_bar_follows_the_reports_progress(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(cli_report, "FIRST_POLL_SECONDS", 0)
    polls = [at("processing", 40.0), at("processing", 80.0), at("done", 100.0)]

    final = cli_report.wait_for(ScriptedClient(polls), at("queued", 0.0))

    drawn = capsys.readouterr().err
    assert final.status == "done"
    # tqdm redraws at most every 0.1 s, so not every step need be drawn; the last one always is.
    assert drawn.rstrip().endswith("report r1: 100%|██████████| 00:00, done")
    percents = [int(p) for p in re.findall(r"report r1:\s+(\d+)%", drawn)]
    assert percents == sorted(percents) and percents[0] == 0


def test_waiting_on_a_report_that_fails_says_why_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_report, "FIRST_POLL_SECONDS", 0)
    scripted = ScriptedClient([at("failed", 30.0, error="matched more than 2,000,000 events")])

    with pytest.raises(ClickException, match="^report r1 failed: matched more than 2,000,000 events$"):
        cli_report._show(scripted, at("processing", 10.0), wait=True, as_json=False)


async def test_webhooks_token_list_set_and_unset(api: str, account: ApiAccount, client: httpx.AsyncClient) -> None:
    def webhooks(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return run(*args, url=api, key=account.api_key, group="webhooks", stdin=stdin)

    made = ok(webhooks("token"))
    set_from_stdin = ok(webhooks("set", "postmark", "-", stdin="hooks:a-long-random-password\n"))
    listed = ok(webhooks("list"))
    overview = (await client.get("/api/webhooks")).json()
    bad_secret = webhooks("set", "postmark", "no-colon")
    unknown = webhooks("set", "nope", "a:b")
    climbing = webhooks("unset", "../reports/x")  # one path segment, not a way to another endpoint
    up = webhooks("unset", "..")  # not DELETE /api
    token_json = json.loads(ok(webhooks("token", "--json")))
    unset = ok(webhooks("unset", "postmark"))

    token = re.match(r"token: (wh_\S+)\n", made)[1]
    assert made.startswith(f"token: {token}\n(shown this once; a token made before no longer works)\n\n")
    assert re.search(rf"\n  postmark +{api}/webhooks/postmark/{token}\n", made)
    postmark = next(provider for provider in overview["providers"] if provider["name"] == "postmark")
    assert set_from_stdin == f"postmark: secret set {postmark['updated_at']}\n"
    assert listed.startswith(f"token: made {overview['token_created_at']}\n\n")
    assert re.search(rf"\npostmark +secret set {postmark['updated_at']}\n  The basic-auth credentials Postmark", listed)
    assert (bad_secret.returncode, bad_secret.stderr) == (
        1,
        "Error: Bad Request (400): the request is invalid\n"
        "  secret: expected username:password (the webhook's basic-auth credentials), both non-empty\n",
    )
    assert unknown.returncode == 1 and unknown.stderr.startswith(
        "Error: Not Found (404): No such webhook provider 'nope'"
    )
    # Not DELETE /api/reports/x ("No such report."): the route with a provider of that name, which none has.
    assert (climbing.returncode, climbing.stderr) == (1, "Error: Not Found (404): No such resource.\n")
    assert up.returncode == 1 and up.stderr.startswith("Error: Not Found (404): No such webhook provider '..'")
    assert token_json["token"] != token
    assert token_json["urls"]["postmark"] == f"{api}/webhooks/postmark/{token_json['token']}"
    assert unset == "postmark: no secret; its deliveries are refused from now on\n"
    after = (await client.get("/api/webhooks")).json()["providers"]
    assert next(provider for provider in after if provider["name"] == "postmark")["configured"] is False


async def test_keys_list_create_rotate_and_revoke(api: str, account: ApiAccount, client: httpx.AsyncClient) -> None:
    def keys(*args: str, key: str = account.api_key) -> subprocess.CompletedProcess:
        return run(*args, url=api, key=key, group="keys")

    created = ok(keys("create", "dashboard", "--read-only"))
    made = re.fullmatch(r"key:     (\w+) \(dashboard, read-only\)\nAPI key: (cr_\S+)\n\(shown this once\)\n", created)
    assert made is not None, created
    key_id, secret = made[1], made[2]
    listed = ok(keys("list")).splitlines()
    api_keys = (await client.get("/api/keys")).json()["items"]
    listed_json = ok(keys("list", "--json"))
    rotated = json.loads(ok(keys("rotate", key_id, "--json")))
    rotated_text = ok(keys("rotate", key_id))
    new_secret = re.search(r"\nAPI key: (cr_\S+)\n", rotated_text)[1]
    refused = keys("create", "more", key=new_secret)  # a read-only key manages no keys
    revoked = ok(keys("revoke", key_id))
    last = keys("revoke", api_keys[0]["id"])
    gone = keys("rotate", key_id)

    first, mine = api_keys
    assert listed[0].split() == ["id", "access", "prefix", "created", "name"]
    assert listed[1].split() == [first["id"], "full", "access", first["prefix"], first["created_at"], "default"]
    assert listed[2].split() == [key_id, "read-only", secret[:10], mine["created_at"], "dashboard"]
    assert len(listed) == 3
    assert [json.loads(line) for line in listed_json.splitlines()] == api_keys
    assert rotated == {**mine, "prefix": rotated["api_key"][:10], "api_key": rotated["api_key"]}
    assert rotated_text.endswith("(shown this once; the key's previous secret no longer works)\n")
    assert (refused.returncode, refused.stderr) == (
        1,
        "Error: Forbidden (403): This API key is read-only: it may only read (GET). Use a full-access key to change "
        "anything.\n",
    )
    assert revoked == f"revoked key {key_id}: it no longer works\n"
    assert last.returncode == 1 and last.stderr.startswith(
        "Error: Conflict (409): This is the account's last full-access key, so it cannot be revoked"
    )
    assert (gone.returncode, gone.stderr) == (1, "Error: Not Found (404): No such API key.\n")
    assert (await client.get("/api/keys")).json()["items"] == [first]


# Each API group's `list --json`, and what the API answers for it (the items of a page, or one object).
LISTED = {"report": ("/api/reports", "items"), "webhooks": ("/api/webhooks", None), "keys": ("/api/keys", "items")}


@pytest.mark.parametrize("group", list(LISTED))
@pytest.mark.parametrize("where", ["before the subcommand", "after it", "after it, overriding the group's"])
async def test_url_and_api_key_are_taken_before_or_after_the_subcommand(
    api: str, account: ApiAccount, client: httpx.AsyncClient, group: str, where: str
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    connection = ["--url", api, "--api-key", account.api_key]
    args = {
        "before the subcommand": [*connection, "list", "--json"],
        "after it": ["list", "--json", *connection],
        "after it, overriding the group's": ["--url", down, "--api-key", "cr_not_a_key", "list", *connection, "--json"],
    }[where]
    await create_report(client, email="ann@example.com", categories=["email"], start="2026-01-01T00:00:00Z",
                        end="2027-01-01T00:00:00Z")  # fmt: skip

    # The environment names a service that is down and a key that is none: only the options can work.
    listed = ok(run(*args, url=down, key="cr_not_a_key", group=group))

    path, items = LISTED[group]
    answer = (await client.get(path)).json()
    assert [json.loads(line) for line in listed.splitlines()] == (answer[items] if items else [answer])
