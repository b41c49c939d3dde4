"""The first run on the embedded default, in a real browser: no model key at all (the offline
model), a plain request with a schedule, a CSV attached, a test run — and an answer with the file's
real figures (the csv-analysis template's fixed analysis runs in the sandbox; the model phrases it).
The browser is in Berlin: the person's time zone is taken from it and the schedule is in it."""

from __future__ import annotations

import pytest

from coherex.store.db import Identity
from coherex.testing.browser import launch
from tests.e2e._chat import login, serve_chat, tracebacks

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture
def offline_chat_server(db_urls, two_teams, tmp_path, local_sandbox):
    from coherex.sandbox.server.run import api_key_file

    settings = local_sandbox[1]
    yield from serve_chat(
        db_urls,
        None,  # no OPENAI_* at all: the builder and the runs use the offline model
        tmp_path,
        COHEREX_SANDBOX="local",
        COHEREX_SANDBOX_PORT=str(settings.sandbox_port),
        E2B_API_KEY=api_key_file(settings).read_text().strip(),
    )


async def test_every_morning_at_8_summarise_the_csv_i_upload_on_the_offline_model(
    offline_chat_server, db, two_teams, tmp_path
):
    from playwright.async_api import async_playwright, expect

    alpha, _ = two_teams
    sales = tmp_path / "sales.csv"
    sales.write_text("region,amount\nnorth,1200\nsouth,3400\nwest,800\n")
    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, offline_chat_server, alpha, "Europe/Berlin")
        await page.locator("#chat-input").fill("Every morning at 8, summarise the CSV I upload")
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        async with page.expect_response(lambda r: "/project/file" in r.url, timeout=30_000) as uploaded:
            await page.locator("#upload-button-input").set_input_files(str(sales))
        assert (await uploaded.value).status == 200
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        # the guided builder picked the data-analysis template and read the schedule
        await expect(page.get_by_text("csv-analysis").first).to_be_visible(timeout=180_000)
        # every day at 8 in the person's time zone, taken from the browser: no question about it
        await expect(page.get_by_text("every day at 08:00 (Europe/Berlin)").first).to_be_visible(
            timeout=30_000
        )
        await expect(page.get_by_text("your time zone")).to_have_count(0)
        await page.get_by_role("button", name="Test run").last.click()
        # the fixed analysis's real figures reach the answer (total 5400, the top region south)
        answer = page.get_by_text("5400").or_(page.get_by_text("5,400"))
        await expect(answer.last).to_be_visible(timeout=300_000)
        await browser.close()

    async with db.session(alpha.identity) as s:
        [run] = await s.executions.list(team_id=alpha.team_id)
        assert run.status == "completed" and run.inputs["file"] == "sales.csv"
        assert "5400" in str(run.output) or "5,400" in str(run.output)
        tools = [e.name for e in await s.executions.events(run.id) if e.type == "tool_call"]
        assert "csv_summarize" in tools
        [agent] = await s.agents.list(alpha.team_id)
        saved = await s.agents.require_version(agent)  # the test run saved the draft first
    assert saved.spec["spec"]["triggers"] == [
        {"schedule": {"cron": "0 8 * * *", "timezone": "Europe/Berlin"}}
    ]
    async with db.session(Identity.system()) as s:
        assert (await s.users.get(alpha.user_id)).timezone == "Europe/Berlin"  # kept as the person's
    log = (tmp_path / "chainlit.log").read_text()
    assert tracebacks(log) == [], log[-3000:]
