"""A screenshot of the report page for the README, from the demo data.

    .venv/bin/python tests/screenshot.py [OUT.png]    (default: docs/report-page.png)

Seeds the demo into a fresh database, starts its own Redis, API and worker, creates the demo
contact's report (every email and campaign action in the last year, as the README's curl tour does), and
saves the report page, full length, as headless Chromium shows it at a desktop width.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
from playwright.async_api import async_playwright, expect

sys.path.insert(0, str(Path(__file__).parent))  # conftest and helpers, when run as a script

from browser import launch_chromium, sign_in  # noqa: E402
from conftest import DEADLINE_SECONDS, Process, service_env, start_api  # noqa: E402
from contactreports.cli.demo import DEMO_API_KEY, demo_search, seed_demo  # noqa: E402
from contactreports.cli.embedded_redis import start_redis, stop_redis  # noqa: E402
from contactreports.store.database import Database  # noqa: E402
from helpers import wait_done  # noqa: E402

ROOT = Path(__file__).parent.parent
DEFAULT_OUT = ROOT / "docs" / "report-page.png"
DESKTOP = {"width": 1280, "height": 900}


async def _seed(database_url: str) -> None:
    db = await Database.open(database_url)
    try:
        await seed_demo(db)
    finally:
        await db.close()


async def take_screenshot(out: Path = DEFAULT_OUT) -> Path:
    """Write the demo contact's report page to `out` (a PNG) and return it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="contactreports-screenshot-") as tmp:
        work = Path(tmp)
        database_url = f"sqlite:///{work / 'contactreports.db'}"
        await _seed(database_url)
        redis, redis_url = start_redis(work / "redis")
        env = service_env(database_url, redis_url, queue_name="contactreports:screenshot")
        worker = api = None
        try:
            worker = Process(["worker"], env, work / "worker.log")
            api, url = start_api(env, work, "api")
            headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
            async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
                response = await client.post("/api/reports", json=demo_search(datetime.now(UTC)))
                response.raise_for_status()
                report_id = response.json()["id"]
                if (await wait_done(client, report_id))["status"] != "done":
                    raise RuntimeError(f"the demo report {report_id} failed")
            async with async_playwright() as playwright:
                browser = await launch_chromium(playwright)
                try:
                    context = await browser.new_context(
                        base_url=url, viewport=DESKTOP, timezone_id="Europe/Berlin", locale="en-GB"
                    )
                    context.set_default_timeout(DEADLINE_SECONDS * 1000)
                    page = await context.new_page()
                    await page.goto("/")
                    await sign_in(page, DEMO_API_KEY)
                    await expect(page.get_by_role("heading", level=1)).to_have_text("Your reports")
                    await page.goto(f"/reports/{report_id}")
                    await expect(page.locator("#report-status .badge")).to_have_text("done")
                    await expect(page.locator("table.rows tbody tr").first).to_be_visible()
                    await page.wait_for_load_state("networkidle")
                    await page.screenshot(path=str(out), full_page=True)
                finally:
                    await browser.close()
        finally:
            for process in (api, worker):
                if process is not None:
                    process.stop()
            stop_redis(redis)
    return out


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    print(asyncio.run(take_screenshot(target)))
