"""Connecting a token-based data source from the platform's own form, in a real browser, as the
person signed in to the chat: a wrong token is refused with the service's reason and nothing is
stored; the right one is checked against the (fake) Slack API, stored encrypted and listed; a
visitor who is not signed in is told to sign in."""

from __future__ import annotations

from pathlib import Path

import pytest

from coherex.store.db import Identity
from coherex.testing.browser import launch
from coherex.testing.fake_saas import FakeSaaS
from coherex.testing.web import WebProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def web(db_urls, two_teams, tmp_path):
    with FakeSaaS() as saas:
        env = {"DATABASE_URL": db_urls.app, "COHEREX_DATA_DIR": str(tmp_path / "data"), **saas.env()}
        with WebProcess(env, tmp_path / "web.log") as server:
            yield saas, server


async def _sources(db, person) -> list[tuple[str, str]]:
    async with db.session(Identity.user(person.user_id)) as s:
        return [(x.name, x.type) for x in await s.sources.list(person.team_id)]


async def test_connect_a_slack_source_from_the_form(web, db, two_teams):
    from playwright.async_api import async_playwright, expect

    saas, server = web
    alpha, _ = two_teams
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        browser = await launch(p)

        stranger = await (await browser.new_context()).new_page()
        await stranger.goto(f"{server.url}/connect?type=slack&name=team-slack")
        await expect(stranger.get_by_text("Sign in first")).to_be_visible(timeout=15_000)

        page = await (await browser.new_context(viewport={"width": 900, "height": 900})).new_page()
        await page.goto(f"{server.url}/chat")
        await page.locator("#email").fill(alpha.email)
        await page.locator("#password").fill("correct horse")
        await page.locator("button[type=submit]").click()
        await expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
        await expect(page.get_by_role("button", name="Csv analysis")).to_be_visible(timeout=30_000)
        await page.wait_for_load_state("networkidle")  # leaving mid-load makes Chainlit log a disconnect

        # the chat's "connect it" link fills in the type and the name
        await page.goto(f"{server.url}/connect?type=slack&name=team-slack&team=alpha")
        token = page.get_by_label("Bot Token")
        await expect(token).to_be_visible(timeout=15_000)
        assert await token.get_attribute("type") == "password"  # secrets are masked
        assert await page.locator("#name").input_value() == "team-slack"

        await token.fill("xoxb-not-a-real-token")
        await page.get_by_role("button", name="Check and save").click()
        await expect(page.locator("#message")).to_contain_text("Not saved", timeout=30_000)
        await expect(page.locator("#message")).to_contain_text("invalid_auth")
        await page.screenshot(path=ARTIFACTS / "connect-1-refused.png")
        assert await _sources(db, alpha) == []

        await token.fill(saas.slack_token)
        await page.get_by_role("button", name="Check and save").click()
        await expect(page.locator("#message")).to_contain_text("Connected: team-slack", timeout=30_000)
        await page.screenshot(path=ARTIFACTS / "connect-2-saved.png")
        assert await token.input_value() == ""  # the secret does not stay in the page
        await browser.close()
    assert await _sources(db, alpha) == [("team-slack", "slack")]
    assert saas.slack_token not in server.log()
    assert "Traceback" not in server.log()
