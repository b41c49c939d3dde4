"""Buttons in a real browser: after Save, Schedule (a preset) and Edit the chat is usable again (no
stop button, the buttons enabled), and after coming back to the conversation Save updates the same
agent as a new version with its schedule — not a new agent `name-2`. The server log has no traceback."""

from __future__ import annotations

import pytest

from coherex.store.db import Identity
from coherex.testing.browser import launch
from coherex.testing.fake_openai import Text, ToolCall
from tests.e2e._chat import login, sandbox_env, serve_chat, tracebacks, until_saved, usable
from tests.e2e.test_chat_browser import AGENT, chat_server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


async def test_buttons_leave_the_chat_usable_and_save_after_a_reload_is_a_new_version(
    chat_server, fake_llm, db, two_teams, tmp_path
):
    from playwright.async_api import async_playwright, expect

    alpha, _ = two_teams
    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, chat_server, alpha)
        fake_llm.script(
            [ToolCall("draft_spec", {"yaml": AGENT}), Text("Here is your agent: it writes one fact.")]
        )
        await page.locator("#chat-input").fill("Every morning tell the team one surprising fact")
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("only when you start it")).to_be_visible(timeout=60_000)

        await page.get_by_role("button", name="Save").last.click()
        await expect(page.get_by_text("Saved daily-fact (version 1).")).to_be_visible(timeout=30_000)

        await page.get_by_role("button", name="Schedule").last.click()
        await page.get_by_role("button", name="Every day at 09:00").click()
        await expect(page.get_by_text("Saved as version 2.")).to_be_visible(timeout=30_000)
        await usable(page)

        fake_llm.script(
            [
                ToolCall("update_spec", {"changes": {"metadata": {"description": "One fact a day"}}}),
                Text("Done: the description is shorter."),
            ]
        )
        await page.get_by_role("button", name="Edit").last.click()
        await expect(page.get_by_text("What should change?")).to_be_visible(timeout=30_000)
        await page.locator("#chat-input").fill("Make the description shorter")
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("Done: the description is shorter.")).to_be_visible(timeout=30_000)
        await usable(page)
        await until_saved(db, alpha, "Done: the description is shorter.")
        await page.context.close()

        page = await login(browser, chat_server, alpha)  # come back to the conversation
        await page.get_by_text("Every morning tell the team one surprising fact").first.click()
        await expect(page.get_by_text("The draft daily-fact is as you left it")).to_be_visible(timeout=30_000)
        await page.get_by_role("button", name="Save").last.click()
        await expect(page.get_by_text("Saved daily-fact (version 3).")).to_be_visible(timeout=30_000)
        await usable(page)
        await browser.close()

    async with db.session(alpha.identity) as s:
        agents = await s.agents.list(alpha.team_id)
        assert [a.name for a in agents] == ["daily-fact"]
        version = await s.agents.require_version(agents[0])
    assert version.version == 3 and version.spec["metadata"]["description"] == "One fact a day"
    assert version.spec["spec"]["triggers"] == [{"schedule": {"cron": "0 9 * * *", "timezone": "UTC"}}]
    async with db.session(Identity.system()) as s:
        conn = s.agents.conn
        rows = await (
            await conn.execute("select cron from public.agent_schedules where agent_id = %s", (agents[0].id,))
        ).fetchall()
    assert rows == [("0 9 * * *",)]
    log = (tmp_path / "chainlit.log").read_text()
    assert "Deadlock" not in log
    assert tracebacks(log) == [], log[-3000:]


@pytest.fixture
def sandbox_chat_server(db_urls, two_teams, fake_llm, tmp_path, local_sandbox):
    """The web process with test runs in the test session's local sandbox server."""
    yield from serve_chat(db_urls, fake_llm, tmp_path, **sandbox_env(local_sandbox))


async def test_a_csv_sent_with_the_request_is_the_file_the_test_run_reads(
    sandbox_chat_server, fake_llm, db, two_teams, tmp_path
):
    """Attached to the first message (before any draft exists), the file becomes the draft's `file`
    input and is in the sandbox of the test run — and again after coming back to the conversation."""
    from playwright.async_api import async_playwright, expect

    alpha, _ = two_teams
    sales = tmp_path / "sales.csv"
    sales.write_text("region,amount\nnorth,17\nsouth,25\n")
    read_it = ToolCall("python", {"code": "print(open('sales.csv').read())"})
    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, sandbox_chat_server, alpha)
        fake_llm.script(
            [
                ToolCall("use_template", {"name": "csv-analysis"}),
                Text("Here is a draft for your data."),
                read_it,
                Text("North sold 17, south 25."),
            ]
        )
        await page.locator("#chat-input").fill("What is in this file?")
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)  # the chat is connected
        async with page.expect_response(lambda r: "/project/file" in r.url, timeout=30_000) as uploaded:
            await page.locator("#upload-button-input").set_input_files(str(sales))
        response = await uploaded.value
        assert response.status == 200, await response.text()
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("sales.csv will be in the working directory")).to_be_visible(
            timeout=60_000
        )
        await page.get_by_role("button", name="Test run").last.click()
        await expect(page.get_by_text("North sold 17, south 25.").last).to_be_visible(timeout=60_000)
        await until_saved(db, alpha, "North sold 17, south 25.")
        await page.context.close()

        page = await login(browser, sandbox_chat_server, alpha)
        await page.get_by_text("What is in this file?").first.click()
        await expect(page.get_by_text("The draft csv-analysis is as you left it")).to_be_visible(
            timeout=30_000
        )
        fake_llm.script([read_it, Text("Still north 17.")])
        await page.get_by_role("button", name="Test run").last.click()
        await expect(page.get_by_text("Still north 17.").last).to_be_visible(timeout=60_000)
        await browser.close()

    async with db.session(alpha.identity) as s:
        runs = await s.executions.list(team_id=alpha.team_id)
        assert len(runs) == 2
        for run in runs:
            assert run.inputs["file"] == "sales.csv"  # not the template's data.csv
            stdout = "".join(
                e.payload.get("text", "") for e in await s.executions.events(run.id) if e.type == "stdout"
            )
            assert "north,17" in stdout
