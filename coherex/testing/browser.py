"""Chromium for browser tests: Debian's `chromium` driven by Playwright (never `playwright install`),
headless and quiet (no background network, updates or sync)."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def launch(playwright: Any) -> Any:
    """A browser from `async with async_playwright() as p: await launch(p)`."""
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
