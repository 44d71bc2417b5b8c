"""Debian's headless Chromium, as the browser tests and the README screenshot drive it (Playwright
cannot download browsers here)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, Playwright

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: without the networking flags Chromium dials out and is refused.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = (
    f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with "
    "`apt-get install -y --no-install-recommends chromium` (.ci/run does)."
)


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


async def sign_in(page: Page, api_key: str) -> None:
    await page.get_by_label("API key").fill(api_key)
    await page.get_by_role("button", name="Sign in").click()
