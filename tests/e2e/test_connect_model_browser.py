"""Connecting a model from the UI, in a real browser, on an install with no model key (the offline
model): the chat says which model answers and links to the form; a wrong key is refused with the
server's reason and nothing is stored; the right one is checked and stored, and from then on the
chat says the team's model answers and the builder talks to it (the fake OpenAI server)."""

from __future__ import annotations

import pytest

from coherex.store.db import Identity
from coherex.testing.browser import launch
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall
from coherex.testing.web import WebProcess
from tests.e2e.test_chat_browser import AGENT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture
def web(db_urls, two_teams, tmp_path):
    with FakeOpenAI(api_key="sk-team-key") as model_server:
        env = {
            "DATABASE_URL": db_urls.app,
            "COHEREX_DATA_DIR": str(tmp_path / "data"),
            "COHEREX_EGRESS_ALLOW": f"127.0.0.1:{model_server.port}",  # the team's server on this host
            "OPENAI_API_KEY": None,  # the install has no model: the offline one answers
            "OPENAI_BASE_URL": None,
        }
        with WebProcess(env, tmp_path / "web.log") as server:
            yield model_server, server


async def _sources(db, person) -> list[tuple[str, str]]:
    async with db.session(Identity.user(person.user_id)) as s:
        return [(x.name, x.type) for x in await s.sources.list(person.team_id)]


async def test_connect_a_model_in_the_ui_and_the_chat_uses_it(web, db, two_teams):
    from playwright.async_api import async_playwright, expect

    model_server, server = web
    alpha, _ = two_teams
    async with async_playwright() as p:
        browser = await launch(p)
        page = await (await browser.new_context(viewport={"width": 1100, "height": 900})).new_page()
        await page.goto(f"{server.url}/chat")
        await page.locator("#email").fill(alpha.email)
        await page.locator("#password").fill("correct horse")
        await page.locator("button[type=submit]").click()
        # the home screen says which model answers, and offers to connect one
        await page.get_by_role("button", name="Model: offline (small) · Connect a model").click(
            timeout=30_000
        )
        await expect(page.get_by_text("The offline model is small")).to_be_visible(timeout=30_000)
        link = page.get_by_role("link", name="Connect a model")
        assert "/connect?type=model" in (await link.get_attribute("href"))
        await page.wait_for_load_state("networkidle")

        await page.goto(f"{server.url}/connect?type=model&name=team-model&team=alpha")
        await page.get_by_label("Base URL").fill(model_server.base_url)
        await page.get_by_label("Model").fill("gpt-4o-mini")
        key = page.get_by_label("API key")
        assert await key.get_attribute("type") == "password"
        await key.fill("sk-wrong")
        await page.get_by_role("button", name="Check and save").click()
        await expect(page.locator("#message")).to_contain_text("Not saved", timeout=30_000)
        await expect(page.locator("#message")).to_contain_text("refused the API key")
        assert await _sources(db, alpha) == []  # nothing changed

        model_server.script([Text("OK")])  # the check's one-token answer
        await key.fill("sk-team-key")
        await page.get_by_role("button", name="Check and save").click()
        await expect(page.locator("#message")).to_contain_text("Connected: team-model", timeout=30_000)
        assert await key.input_value() == ""

        await page.goto(f"{server.url}/chat")
        await expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
        # a new conversation's home screen names the team's model now
        await expect(page.get_by_role("button", name="Model: gpt-4o-mini (team's team-model)")).to_be_visible(
            timeout=30_000
        )
        await page.locator("#chat-input").fill("/model")
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("gpt-4o-mini (the team's model 'team-model')").first).to_be_visible(
            timeout=30_000
        )
        # the builder now talks to the team's model, and the draft card names it
        model_server.script([ToolCall("draft_spec", {"yaml": AGENT}), Text("Here is your agent.")])
        await page.locator("#chat-input").fill("Every morning tell the team one surprising fact")
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("on gpt-4o-mini (the team's model 'team-model')")).to_be_visible(
            timeout=60_000
        )
        await browser.close()
    assert await _sources(db, alpha) == [("team-model", "model")]
    assert model_server.chat_requests[-1].headers["authorization"] == "Bearer sk-team-key"
    assert "sk-team-key" not in server.log()
    assert "Traceback" not in server.log()
