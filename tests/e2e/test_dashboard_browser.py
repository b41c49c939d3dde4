"""The dashboard in a real browser: `streamlit run dashboard_app.py` against a seeded database,
Debian's Chromium driven by Playwright signs in and visits every page; each page is screenshotted
into test-artifacts/dashboard/ (kept by CI as artifacts)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from coherex.store.embedded import free_port
from coherex.testing.browser import CHROMIUM, launch
from coherex.testing.demo import seed

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
PAGES = [
    "Overview",
    "Executions",
    "Agents",
    "Knowledge base",
    "Data sources",
    "Audit log",
    "Usage and quotas",
]


@pytest.fixture
def dashboard(db_urls, tmp_path):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": db_urls.app, "COHEREX_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboard_app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("streamlit did not start: " + proc.stdout.read().decode(errors="replace")[-2000:])
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian chromium is not installed (scripts/apt-packages-test.txt)"
)
async def test_sign_in_and_screenshot_every_page(db, two_teams, dashboard):
    from playwright.async_api import async_playwright, expect

    alpha, _ = two_teams
    await seed(db, alpha.team_id, alpha.user_id, executions=800, days=20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as p:
        browser = await launch(p)
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        await page.goto(dashboard)
        await expect(page.get_by_label("Email")).to_be_visible(timeout=60_000)  # the first run imports a lot
        await page.get_by_label("Email").fill(alpha.email)
        await page.get_by_label("Password", exact=True).fill("correct horse")
        await page.get_by_role("button", name="Sign in").click()
        sidebar = page.get_by_test_id("stSidebar")
        for name in PAGES:
            await sidebar.get_by_test_id("stRadioGroup").get_by_text(name, exact=True).click()
            await expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible(timeout=30_000)
            if name == "Overview":
                await expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=30_000)
                await expect(page.get_by_test_id("stMetricValue").first).to_have_text("800", timeout=30_000)
            await expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=30_000)
            await page.screenshot(
                path=str(ARTIFACTS / f"{PAGES.index(name) + 1:02d}-{name.lower().replace(' ', '-')}.png"),
                full_page=True,
            )
        await browser.close()
