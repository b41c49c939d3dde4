"""The person's time zone in a real browser: one set with `coherex users set-timezone` or in the
chat settings is the one schedules use, and a browser in another zone never replaces it; a wrong
name in the settings is refused by name and changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from coherex.cli import main
from coherex.store.db import Identity
from coherex.testing.browser import launch
from coherex.testing.fake_openai import Text, ToolCall
from tests.e2e._chat import login, tracebacks
from tests.e2e.test_chat_browser import AGENT, chat_server  # noqa: F401 (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


async def _stored(db, person) -> str | None:
    async with db.session(Identity.system()) as s:
        return (await s.users.get(person.user_id)).timezone


async def _set_in_settings(page, value: str) -> None:
    from playwright.async_api import expect

    await page.locator("#chat-settings-open-modal").click()
    field = page.locator("#timezone")
    await expect(field).to_be_visible(timeout=15_000)
    await field.fill(value)
    await page.get_by_role("button", name="Confirm").click()


async def test_a_zone_set_by_the_cli_or_in_the_settings_is_kept_over_the_browsers(
    chat_server, cli_env, fake_llm, db, two_teams, tmp_path
):
    from playwright.async_api import async_playwright, expect

    alpha, _ = two_teams
    assert await asyncio.to_thread(main, ["users", "set-timezone", alpha.email, "America/New_York"]) == 0
    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, chat_server, alpha, "Asia/Tokyo")
        # the settings show the zone set with the CLI, not the browser's
        await page.locator("#chat-settings-open-modal").click()
        await expect(page.locator("#timezone")).to_have_value("America/New_York", timeout=15_000)
        await page.keyboard.press("Escape")
        assert await _stored(db, alpha) == "America/New_York"

        fake_llm.script([ToolCall("draft_spec", {"yaml": AGENT}), Text("Here is your agent.")])
        await page.locator("#chat-input").fill("Tell the team one surprising fact")
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("Here is your agent.")).to_be_visible(timeout=60_000)
        await page.get_by_role("button", name="Schedule").last.click()
        await page.get_by_role("button", name="Every day at 09:00").click()
        await expect(page.get_by_text("Scheduled: every day at 09:00 (America/New_York).")).to_be_visible(
            timeout=30_000
        )

        # a typo is refused by name; the stored zone stays
        await _set_in_settings(page, "Europe/Lisbn")
        await expect(page.get_by_text("'Europe/Lisbn' is not a time zone")).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("Did you mean Europe/Lisbon?")).to_be_visible()
        assert await _stored(db, alpha) == "America/New_York"

        await _set_in_settings(page, "Europe/Lisbon")
        await expect(page.get_by_text("Your time zone is now Europe/Lisbon")).to_be_visible(timeout=30_000)
        assert await _stored(db, alpha) == "Europe/Lisbon"
        await page.get_by_role("button", name="Schedule").last.click()
        await page.get_by_role("button", name="Every day at 09:00").last.click()
        await expect(page.get_by_text("Scheduled: every day at 09:00 (Europe/Lisbon).")).to_be_visible(
            timeout=30_000
        )
        await page.context.close()

        # back from a browser in yet another zone: the chosen one stays
        page = await login(browser, chat_server, alpha, "Australia/Sydney")
        await page.locator("#chat-settings-open-modal").click()
        await expect(page.locator("#timezone")).to_have_value("Europe/Lisbon", timeout=15_000)
        await browser.close()
    assert await _stored(db, alpha) == "Europe/Lisbon"
    log = (tmp_path / "chainlit.log").read_text()
    assert tracebacks(log) == [], log[-3000:]


async def test_the_settings_panel_switches_team_and_sets_the_zone_in_one_save(
    chat_server, db, two_teams, tmp_path
):
    """For a person in two teams the panel holds both; saving applies each change once (a save that
    changes only the zone does not switch teams)."""
    from playwright.async_api import async_playwright, expect

    alpha, bravo = two_teams
    async with db.session(Identity.system()) as s:
        await s.members.add(bravo.team_id, alpha.user_id, "member")
    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, chat_server, alpha, "Europe/Berlin")
        await page.locator("#chat-settings-open-modal").click()
        await expect(page.locator("#timezone")).to_have_value(
            "Europe/Berlin", timeout=15_000
        )  # the browser's
        await page.locator("#team").click()
        await page.get_by_role("option", name="bravo").click()
        await page.locator("#timezone").fill("Asia/Tokyo")
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.get_by_text("Now working in team Bravo")).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("Your time zone is now Asia/Tokyo")).to_be_visible(timeout=30_000)

        await _set_in_settings(page, "America/Chicago")
        await expect(page.get_by_text("Your time zone is now America/Chicago")).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("team Bravo")).to_have_count(1)  # no second switch message
        await browser.close()
    assert await _stored(db, alpha) == "America/Chicago"
    assert tracebacks((tmp_path / "chainlit.log").read_text()) == []
