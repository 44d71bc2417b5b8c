"""The web page in a real browser: Playwright driving Debian's headless Chromium against the API
process (its own database; reports go to a queue whose worker the test starts when it wants them run).
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, Route, async_playwright, expect

from browser import CHROMIUM, MISSING, launch_chromium, sign_in
from conftest import DEADLINE_SECONDS, Process, service_env, start_api
from contactreports.config import Settings
from contactreports.jobs.generate import generate_report
from contactreports.jobs.worker import job_context
from contactreports.models import ReportSpec
from contactreports.store import reports as store
from contactreports.store.accounts import account_for_key, create_account
from contactreports.store.database import Database
from contactreports.web.pages import LIST_LIMIT
from helpers import create_report, ingest, put_campaign, signed_in, wait_done

WEB_QUEUE = "contactreports:web-tests"
PHONE = {"width": 390, "height": 844}
VIEWER_ZONE = "America/New_York"
DEADLINE_MS = DEADLINE_SECONDS * 1000
SEARCH = {
    "email": "ann@example.com",
    "categories": ["email"],
    "start": "2026-01-01T00:00:00Z",
    "end": "2027-01-01T00:00:00Z",
}


@pytest.fixture(scope="module")
def web_env(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> dict[str, str]:
    database_url = f"sqlite:///{tmp_path_factory.mktemp('web-db') / 'contactreports.db'}"
    return service_env(database_url, redis_url, queue_name=WEB_QUEUE, chunk_rows=100)


@pytest.fixture(scope="module")
def web(web_env: dict[str, str], logs: Path) -> Iterator[str]:
    """The app on a free port; no worker reads its queue until a test starts one."""
    process, url = start_api(web_env, logs, "web-api")
    yield url
    process.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(MISSING)
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Browser, web: str) -> AsyncIterator[Page]:
    context = await browser.new_context(base_url=web, viewport=PHONE, locale="en-US", timezone_id=VIEWER_ZONE)
    context.set_default_timeout(DEADLINE_MS)
    yield await context.new_page()
    await context.close()


@pytest.fixture
async def web_account(web_env: dict[str, str]) -> tuple[str, str]:
    return await make_web_account(web_env)


async def make_web_account(web_env: dict[str, str]) -> tuple[str, str]:
    """A new account's name and API key, in the web app's database."""
    db = await Database.open(web_env["DATABASE_URL"])
    try:
        name = f"web-{uuid.uuid4().hex[:8]}"
        _, api_key = await create_account(db, name)
    finally:
        await db.close()
    return name, api_key


async def test_sign_in_watch_a_report_finish_live_rerun_delete_sign_out(
    page: Page, web: str, web_env: dict[str, str], web_account: tuple[str, str], logs: Path
) -> None:
    name, api_key = web_account
    await page.goto("/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    await sign_in(page, "cr_not_a_key")
    await expect(page.get_by_role("alert")).to_have_text("That API key is not valid. Check it and try again.")
    await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")

    await sign_in(page, api_key)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Your reports")
    await expect(page.locator(".who")).to_have_text(name)
    await expect(page.locator(".empty")).to_have_text("No reports yet.")
    await expect(page.get_by_role("link", name="New search")).to_be_visible()
    [cookie] = await page.context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (
        "contactreports_session",
        True,
        True,
        "Strict",
    )
    assert api_key not in cookie["value"]  # encrypted
    # The JSON API still wants the key as a Bearer token: the page's cookie opens nothing there.
    assert (await page.request.get("/api/reports")).status == 401

    # A report created through the API appears, queued, without a reload (the marker survives).
    await page.evaluate("window.notReloaded = true")
    async with httpx.AsyncClient(base_url=web, headers={"Authorization": f"Bearer {api_key}"}) as client:
        await put_campaign(client, "spring", "Spring sale")
        await ingest(client, [event(n) for n in range(3)])
        report = await create_report(client, **SEARCH)
    row = page.locator(f"tr[data-report-id='{report['id']}']")
    await expect(row.locator(".badge")).to_have_text("queued")
    bar = row.get_by_role("progressbar", name="Progress of the report for ann@example.com")
    await expect(bar).to_have_attribute("aria-valuenow", "0")
    await expect(row.locator(".percent")).to_have_text("0%")
    new_search = page.get_by_role("button", name="New search")
    await expect(new_search).to_be_disabled()
    await expect(page.locator("#one-at-a-time")).to_have_text(
        "A report is still running; start a new search once it is done (or delete it)."
    )
    await expect(row.get_by_role("button", name="Rerun the report for ann@example.com")).to_be_disabled()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits a phone

    worker = Process(["worker"], web_env, logs / "web-worker.log")
    try:
        await expect(row.locator(".badge")).to_have_text("done")
        await expect(bar).to_have_count(0)
        await expect(row.locator(".rows")).to_have_text("3")
        await expect(row.locator("td[data-label='Finished'] time")).to_have_count(1)
        await expect(page.get_by_role("link", name="New search")).to_be_visible()
        assert await page.evaluate("window.notReloaded === true")

        await row.get_by_role("button", name="Rerun the report for ann@example.com").click()
        await expect(page.get_by_role("status")).to_have_text("The report for ann@example.com is queued again.")
        await expect(row.locator(".badge")).to_have_text("done")
        await expect(row.locator(".rows")).to_have_text("3")
    finally:
        worker.stop()

    await row.get_by_role("link", name="Delete the report for ann@example.com").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Delete the report for ann@example.com?")
    await page.get_by_role("button", name="Delete report").click()
    await expect(page.get_by_role("status")).to_have_text("The report is deleted.")
    await expect(page.locator(".empty")).to_have_text("No reports yet.")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    # Litestar clears a session by overwriting its cookie with "null", expiring at once: the
    # browser may still hold the "null" cookie or have dropped it; no cookie holds a session.
    assert [cookie["value"] for cookie in await page.context.cookies() if cookie["value"] != "null"] == []
    await page.goto("/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def event(n: int) -> dict:
    return {
        "id": f"web-{n}",
        "email": "ann@example.com",
        "action": "email.opened",
        "occurred_at": f"2026-03-0{n + 1}T09:00:00Z",
        "campaign_id": "spring",
    }


async def test_new_search_form_shows_errors_inline_then_starts_a_report(
    page: Page, web_account: tuple[str, str]
) -> None:
    _, api_key = web_account
    await page.goto("/")
    await sign_in(page, api_key)
    await page.get_by_role("link", name="New search").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("New search")

    await page.get_by_role("button", name="Start search").click()
    email = page.get_by_label("Email address")
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(email).to_have_attribute("aria-describedby", "email-error")
    await expect(page.locator("#email-error")).to_have_text("Not an email address.")
    await expect(page.locator("#actions-error")).to_have_text("Name at least one action or category.")
    await expect(page.locator("#start-error")).to_have_text("Enter a start date.")
    await expect(page.locator("#end-error")).to_have_text("Enter an end date.")
    await expect(page.get_by_role("alert")).to_have_count(4)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits a phone

    await email.fill("  Ann@Example.com ")
    sms = page.get_by_role("group", name="SMS")
    await sms.get_by_label("All SMS actions").check()
    await expect(sms.get_by_label("Delivered")).to_be_checked()
    await page.get_by_role("button", name="Last 30 days").click()
    today = datetime.now(UTC).date()
    await expect(page.get_by_label("From (UTC)")).to_have_value((today - timedelta(days=29)).isoformat())
    await expect(page.get_by_label("To (UTC, included)")).to_have_value(today.isoformat())
    await page.get_by_role("button", name="Start search").click()

    await expect(page.get_by_role("heading", level=1)).to_have_text("Your reports")
    await expect(page.get_by_role("status")).to_have_text("The report for ann@example.com is queued.")
    row = page.locator("tr[data-report-id]")
    await expect(row).to_have_count(1)
    await expect(row.locator("td[data-label='Contact']")).to_have_text("ann@example.com")
    await expect(row.locator(".badge")).to_have_text("queued")
    report_id = await row.get_attribute("data-report-id")

    # The same one-active-report rule as the API, named in the form, which keeps what was typed.
    await page.goto("/reports/new")
    await page.get_by_label("Email address").fill("bob@example.com")
    await page.get_by_role("group", name="Email").get_by_label("Opened").check()
    await page.get_by_role("button", name="This year").click()
    await page.get_by_role("button", name="Start search").click()
    await expect(page.locator("#form-error")).to_have_text(
        f"A report is still running (the report for ann@example.com, {report_id}): one search at a time. "
        "Wait for it to finish, or delete it."
    )
    await expect(page.get_by_label("Email address")).to_have_value("bob@example.com")
    await expect(page.get_by_role("group", name="Email").get_by_label("Opened")).to_be_checked()
    await expect(page.get_by_label("From (UTC)")).to_have_value(f"{today.year}-01-01")


REPORT_EVENTS = [
    ("r-1", "email.opened", "2026-03-01T09:00:00Z", "spring", None),
    ("r-2", "email.clicked", "2026-03-02T10:30:00Z", "spring", {"url": "https://example.com/sale?a=1&b=2"}),
    ("r-3", "email.bounced", "2026-03-03T11:00:00Z", None, {"type": "hard", "reason": "<b>mailbox unknown</b>"}),
    ("r-4", "email.opened", "2026-03-04T12:00:00Z", "spring", {"device": "phone", "count": 2}),
]


async def test_report_page_rows_filter_pages_summary_and_csv_export(
    page: Page, web: str, web_env: dict[str, str], web_account: tuple[str, str], logs: Path
) -> None:
    _, api_key = web_account
    async with httpx.AsyncClient(base_url=web, headers={"Authorization": f"Bearer {api_key}"}) as client:
        await put_campaign(client, "spring", "Spring sale")
        events = [
            {"id": id_, "email": "ann@example.com", "action": action, "occurred_at": at, "campaign_id": campaign}
            | ({"details": details} if details else {})
            for id_, action, at, campaign, details in REPORT_EVENTS
        ]
        await ingest(client, events)
        report = await create_report(client, **SEARCH)
        await page.goto("/")
        await sign_in(page, api_key)
        await page.get_by_role("link", name="Open the report for ann@example.com").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("ann@example.com")
        await expect(page.locator("#report-status .badge")).to_have_text("queued")
        await expect(page.get_by_role("progressbar", name="Progress of the report")).to_be_visible()
        await expect(page.locator("table.rows")).to_have_count(0)
        worker = Process(["worker"], web_env, logs / "web-report-worker.log")
        try:
            assert (await wait_done(client, report["id"]))["status"] == "done"
        finally:
            worker.stop()
        await expect(page.locator("#report-status .badge")).to_have_text("done")
        api_csv = (await client.get(f"/api/reports/{report['id']}/export", params={"format": "csv"})).content

    table = page.locator("table.rows tbody tr")
    await expect(table).to_have_count(4)
    await expect(table.locator("td[data-label='Action']")).to_have_text(
        ["email.opened", "email.clicked", "email.bounced", "email.opened"]
    )
    await expect(table.locator("td[data-label='Campaign']")).to_have_text(
        ["Spring sale", "Spring sale", "—", "Spring sale"]
    )
    await expect(table.locator("td[data-label='Details']")).to_have_text(
        [
            "",
            "url: https://example.com/sale?a=1&b=2",
            "type: hardreason: <b>mailbox unknown</b>",
            "device: phonecount: 2",
        ]
    )
    times = [await t.get_attribute("datetime") for t in await table.locator("time").all()]
    assert times == [f"{at[:-1]}.000Z" for _, _, at, _, _ in REPORT_EVENTS]
    link = table.get_by_role("link", name="https://example.com/sale?a=1&b=2")
    await expect(link).to_have_attribute("href", "https://example.com/sale?a=1&b=2")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    await expect(page.locator("table.rows b")).to_have_count(0)  # details are text, never HTML
    # Without JavaScript the times read in UTC; the script shows them in the viewer's zone instead.
    await expect(table.locator("time").first).to_have_text("Mar 1, 2026, 4:00:00 AM")  # 09:00Z in New York

    summary = page.locator("table.summary tbody tr")
    # Most rows first, ties in catalogue order.
    await expect(summary).to_have_text(["email.opened2", "email.clicked1", "email.bounced1"])
    await expect(page.locator(".first time")).to_have_attribute("datetime", "2026-03-01T09:00:00.000Z")
    await expect(page.locator(".last time")).to_have_attribute("datetime", "2026-03-04T12:00:00.000Z")
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # fits a phone
    chart = page.get_by_role("img", name="Activity over time", exact=False)
    bars = [int(await bar.get_attribute("data-count") or "") for bar in await chart.locator("rect").all()]
    # 30 slices of [03-01T09:00, 03-04T12:00] (75 h and 1 ms): 03-03T11:00 (50 h in) falls just short of slice 20.
    assert len(bars) == 30 and sum(bars) == 4
    assert [i for i, count in enumerate(bars) if count] == [0, 10, 19, 29]

    await page.get_by_label("Action").select_option("email.opened")
    await page.get_by_role("button", name="Filter").click()
    await expect(table.locator("td[data-label='Action']")).to_have_text(["email.opened", "email.opened"])
    await expect(page.get_by_label("Action")).to_have_value("email.opened")

    await page.goto(f"/reports/{report['id']}?limit=3")
    await expect(table).to_have_count(3)
    await page.get_by_role("link", name="Next page").click()
    await expect(table.locator("td[data-label='Action']")).to_have_text(["email.opened"])
    await expect(page.get_by_role("link", name="Next page")).to_have_count(0)
    await page.get_by_role("link", name="First page").click()
    await expect(table).to_have_count(3)
    # A link edited by hand says what is wrong with it, in words.
    await page.goto(f"/reports/{report['id']}?action=email.nope")
    await expect(page.get_by_role("alert")).to_have_text("Unknown action 'email.nope'.")
    await page.goto(f"/reports/{report['id']}?cursor=forged.cursor")
    await expect(page.get_by_role("alert")).to_have_text("Not a cursor this list gave out.")

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await download_info.value
    assert download.suggested_filename == f"contact-report-{report['id']}.csv"
    assert Path(await download.path()).read_bytes() == api_csv
    assert api_csv.count(b"\n") == 5
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export XLSX").click()
    download = await download_info.value
    assert download.suggested_filename == f"contact-report-{report['id']}.xlsx"
    assert Path(await download.path()).read_bytes()[:2] == b"PK"  # a zip: the workbook


async def test_the_readme_screenshot_helper_writes_a_desktop_png_of_the_report_page(tmp_path: Path) -> None:
    from screenshot import DESKTOP, take_screenshot

    out = await take_screenshot(tmp_path / "report-page.png")
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert width == DESKTOP["width"] == 1280
    assert height >= DESKTOP["height"]  # the full page, longer than one screen
    assert len(png) > 50_000


async def test_the_list_pages_past_fifty_reports_and_keeps_focus_and_local_times_through_live_updates(
    browser: Browser, web: str, web_env: dict[str, str], web_account: tuple[str, str]
) -> None:
    _, api_key = web_account
    db = await Database.open(web_env["DATABASE_URL"])
    try:
        caller = await account_for_key(db, api_key)
        assert caller is not None
        account = caller.account
        job = job_context(Settings(database_url=web_env["DATABASE_URL"]), db)
        for n in range(LIST_LIMIT + 1):  # oldest first: contact 0 is the one on the second page
            report = await store.create_report(db, account.id, spec(f"c{n}@example.com"))
            assert await generate_report(job, account.id, report.id, 1) == "done: 0 rows"

        context = await browser.new_context(base_url=web, viewport=PHONE, timezone_id="Asia/Tokyo")
        context.set_default_timeout(DEADLINE_MS)
        page = await context.new_page()
        await page.goto("/")
        await sign_in(page, api_key)
        rows = page.locator("tr[data-report-id] td[data-label='Contact']")
        await expect(rows).to_have_count(LIST_LIMIT)
        await expect(rows.first).to_have_text(f"c{LIST_LIMIT}@example.com")
        await expect(page.get_by_role("link", name="Newest reports")).to_have_count(0)
        await page.get_by_role("link", name="Older reports").click()
        await expect(rows).to_have_text(["c0@example.com"])
        await expect(page.get_by_role("link", name="Older reports")).to_have_count(0)
        await page.get_by_role("link", name="Newest reports").click()
        await expect(rows).to_have_count(LIST_LIMIT)

        # A keyboard user on a row's link stays there while a new report arrives in the list.
        await page.get_by_role("link", name="Open the report for c7@example.com").focus()
        await store.create_report(db, account.id, spec("new@example.com"))
        await expect(rows.first).to_have_text("new@example.com")
        focused = "document.activeElement.getAttribute('aria-label')"
        assert await page.evaluate(focused) == "Open the report for c7@example.com"
        # Times swapped in live are shown in the viewer's zone too, as on first load.
        created = page.locator("tr[data-report-id] td[data-label='Created'] time").first
        assert await created.inner_text() == await created.evaluate(
            "t => new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'medium'})"
            ".format(new Date(t.getAttribute('datetime')))"
        )
        assert "UTC" not in await created.inner_text()
        await context.close()
    finally:
        await db.close()


def spec(email: str) -> ReportSpec:
    return ReportSpec(email, ("email.opened",), 1767225600000, 1798761600000, include_archived=False)


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port or subdomain: SameSite lets its cookies through
        {"Origin": "http://attacker.example"},  # a browser without Fetch Metadata
    ],
)
async def test_forms_sent_from_another_origin_are_refused_and_change_nothing(
    web: str, web_account: tuple[str, str], headers: dict[str, str]
) -> None:
    _, api_key = web_account
    api = httpx.AsyncClient(base_url=web, headers={"Authorization": f"Bearer {api_key}"})
    async with api, signed_in(web, api_key) as page:
        report = await create_report(api, **SEARCH)
        for path, data in [
            ("/sign-in", {"api_key": api_key}),  # signing a visitor in to someone else's account
            ("/reports/new", {"email": "bob@example.com", "categories": "email", "start": "2026-01-01"}),
            (f"/reports/{report['id']}/delete", {}),
            ("/sign-out", {}),
        ]:
            response = await page.post(path, data=data, headers=headers)
            assert response.status_code == 403, path
            assert "This form was sent from another site or page, so it was refused" in response.text
        async with httpx.AsyncClient(base_url=web) as visitor:
            response = await visitor.post("/sign-in", data={"api_key": api_key}, headers=headers)
            assert (response.status_code, response.headers.get("set-cookie")) == (403, None)
        assert [r["id"] for r in (await api.get("/api/reports")).json()["items"]] == [report["id"]]
        assert (await page.get("/")).text.count('class="who"') == 1  # still signed in
        own = {"Sec-Fetch-Site": "same-origin", "Origin": web}
        assert (await page.post(f"/reports/{report['id']}/delete", headers=own)).status_code == 303
        assert (await api.get("/api/reports")).json()["items"] == []


async def test_a_form_auto_posted_by_a_page_on_another_port_is_refused_by_a_real_browser(
    page: Page, web: str, web_env: dict[str, str], web_account: tuple[str, str], tmp_path: Path
) -> None:
    victim, victim_key = web_account
    await page.goto("/")
    await sign_in(page, victim_key)
    _, attacker_key = await make_web_account(web_env)
    (tmp_path / "index.html").write_text(
        f'<form method="post" action="{web}/sign-in"><input name="api_key" value="{attacker_key}"></form>'
        "<script>document.forms[0].submit()</script>"
    )
    with serve_folder(tmp_path) as elsewhere:  # 127.0.0.1 on another port: the same site, not the same origin
        await page.goto(elsewhere)
        await expect(page.get_by_role("alert")).to_contain_text("so it was refused")
    await page.goto("/")
    await expect(page.locator(".who")).to_have_text(victim)


async def test_pages_are_private_unframeable_and_read_a_tampered_cookie_as_signed_out(
    web: str, web_account: tuple[str, str]
) -> None:
    _, api_key = web_account
    async with signed_in(web, api_key) as page:
        response = await page.get("/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    forged = base64.b64encode(b"0" * 12 + b"additional_authenticated_data={}").decode()
    async with httpx.AsyncClient(base_url=web, headers={"Cookie": f"contactreports_session={forged}"}) as client:
        response = await client.get("/")
        assert response.status_code == 200
        assert "<h1>Sign in</h1>" in response.text
        live = await client.get("/reports/live")
        assert (live.status_code, live.headers["location"]) == (303, "/")
    # Over plain HTTP to another host the browser drops the Secure cookie: the form says so.
    async with httpx.AsyncClient(base_url=web, headers={"Host": "reports.example.com"}) as client:
        assert "CONTACTREPORTS_WEB_SECURE_COOKIE=false" in (await client.get("/")).text
    async with httpx.AsyncClient(base_url=web) as client:
        assert "CONTACTREPORTS_WEB_SECURE_COOKIE" not in (await client.get("/")).text


async def test_links_to_reports_that_are_gone_unfinished_or_malformed_answer_with_pages(
    web: str, web_env: dict[str, str], web_account: tuple[str, str]
) -> None:
    _, api_key = web_account
    _, other_key = await make_web_account(web_env)
    api = httpx.AsyncClient(base_url=web, headers={"Authorization": f"Bearer {api_key}"})
    other = httpx.AsyncClient(base_url=web, headers={"Authorization": f"Bearer {other_key}"})
    async with api, other, signed_in(web, api_key) as browser_like:
        theirs = await create_report(other, **SEARCH)
        for request in [("GET", f"/reports/{theirs['id']}"), ("GET", f"/reports/{theirs['id']}/delete")]:
            response = await browser_like.request(*request)
            assert (response.status_code, response.headers["location"]) == (303, "/"), request
        assert "That report no longer exists." in (await browser_like.get("/")).text
        assert (await other.get(f"/api/reports/{theirs['id']}")).status_code == 200  # untouched

        ours = await create_report(api, **SEARCH)  # queued: no worker reads this queue now
        response = await browser_like.get(f"/reports/{ours['id']}/export", params={"format": "csv"})
        assert (response.status_code, response.headers["location"]) == (303, f"/reports/{ours['id']}")
        notice = f"Report {ours['id']} is queued; its rows are ready once it is done."
        assert notice in (await browser_like.get(f"/reports/{ours['id']}")).text

        response = await browser_like.get(f"/reports/{ours['id']}", params={"limit": "many"})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>That did not work</h1>" in response.text

        # Quick ranges work without JavaScript: the form comes back with the dates filled in.
        form = await browser_like.post("/reports/new", data={"quick": "Last 7 days", "email": "ann@example.com"})
        today = datetime.now(UTC).date()
        assert form.status_code == 200
        assert f'value="{(today - timedelta(days=6)).isoformat()}"' in form.text
        assert f'value="{today.isoformat()}"' in form.text
        assert 'value="ann@example.com"' in form.text


@contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """A plain static web server for `folder` on a free port of 127.0.0.1, in a thread."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# What the docs page may reference, by file type: the content type each must come with.
DOCS_CONTENT_TYPES = {"js": {"text/javascript", "application/javascript"}, "css": {"text/css"}, "png": {"image/png"}}


async def test_the_api_docs_load_only_from_this_server_and_show_every_operation(browser: Browser, web: str) -> None:
    html = httpx.get(f"{web}/schema").text
    referenced = re.findall(r"""(?:src|href)=["']([^"']*)["']""", html)
    document = httpx.get(f"{web}/schema/openapi.json").json()
    operations = sum(len(methods) for methods in document["paths"].values())

    assert len(referenced) == 4 and all(url.startswith("/") and not url.startswith("//") for url in referenced)
    for url in referenced:
        response = httpx.get(f"{web}{url}")
        assert response.status_code == 200, url
        assert response.headers["content-type"].split(";")[0] in DOCS_CONTENT_TYPES[url.rsplit(".", 1)[1]], url
    context = await browser.new_context(base_url=web)
    context.set_default_timeout(DEADLINE_MS)
    elsewhere: list[str] = []

    async def this_server_only(route: Route) -> None:
        if route.request.url.startswith(f"{web}/"):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", this_server_only)
    page = await context.new_page()
    try:
        await page.goto("/schema")
        await expect(page.locator(".opblock-summary")).to_have_count(operations)
        await expect(page.locator(".opblock-summary-path", has_text="/api/reports/{report_id}/export")).to_be_visible()
    finally:
        await context.close()
    assert elsewhere == []
