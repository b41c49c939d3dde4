"""Chromium for browser tests: Debian's `chromium` driven by Playwright (never `playwright install`),
headless and quiet (no background network, updates or sync), its clock in UTC whatever the host's
(the chat takes the browser's time zone as the person's; a context may set `timezone_id`)."""

from __future__ import annotations

import os
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
    return await playwright.chromium.launch(
        executable_path=CHROMIUM, args=ARGS, env={**os.environ, "TZ": "UTC"}
    )
