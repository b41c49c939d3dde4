"""The whole flow of a new user, in one real browser session against the real web process: describe
an agent → its draft needs a Slack source that is not connected → the chat's link opens the
platform's connect form, the bot token is checked against the (fake) Slack API and saved → back in
the chat the draft is ready → Save → Schedule (a preset) → reload the page → Save again (the same
agent, version 2, the schedule kept) → attach a CSV and test-run it in the real local sandbox: the
answer carries the file's own figures. After every button the chat is usable (no stop button, the
buttons enabled) and the server log has no traceback.

The builder's LLM is the fake OpenAI server; in the test run its answers are made from what the
tools returned (the figures come from the sandbox's analysis of the attached file, not the script).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coherex.store.db import Identity
from coherex.testing.browser import launch
from coherex.testing.fake_openai import RecordedRequest, Text, ToolCall
from tests.e2e._chat import login, sandbox_env, serve_chat, tracebacks, until_saved, usable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
REQUEST = "Every morning summarise our sales CSV and post the totals to #sales on Slack"
AGENT = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: sales-digest, description: Summarise the sales CSV and post the totals to Slack}
spec:
  instructions: |
    Summarise {{file}} with csv.summarize, then post the totals to #sales with slack.post_message.
  inputs:
    file: {type: string, description: the sales CSV, default: data.csv}
  tools:
    - use: csv.summarize
    - use: slack.post_message
      dataSource: team-slack
      access: write
"""
SALES = (
    "month,region,amount\n2026-01,north,1713\n2026-01,south,2521\n2026-02,north,1908\n2026-02,south,2377\n"
)


@pytest.fixture
def flow_server(db_urls, two_teams, fake_llm, saas, local_sandbox, tmp_path):
    """`coherex web` with the fake Slack API and test runs in the session's local sandbox."""
    yield from serve_chat(db_urls, fake_llm, tmp_path, **saas.env(), **sandbox_env(local_sandbox))


def _tool_result(request: RecordedRequest) -> str:
    """What the last tool call returned, as the runtime sent it to the model."""
    return next(m["content"] for m in reversed(request.body["messages"]) if m["role"] == "tool")


def _figures(summary: str) -> str:
    """The lines of the sandbox's CSV summary that carry the totals."""
    return " ".join(line for line in summary.splitlines() if line.startswith("amount"))


async def test_a_new_user_goes_from_a_request_to_a_scheduled_agent_and_a_test_run_on_their_csv(
    flow_server, fake_llm, saas, db, two_teams, tmp_path
):
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    alpha, _ = two_teams
    channel = saas.slack.add_channel("sales")
    sales = tmp_path / "sales.csv"
    sales.write_text(SALES)
    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, flow_server, alpha)

        # 1. the request: a draft that needs a Slack source the team has not connected
        fake_llm.script([ToolCall("draft_spec", {"yaml": AGENT}), Text("Here is your sales digest agent.")])
        await page.locator("#chat-input").fill(REQUEST)
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("Connect before saving")).to_be_visible(timeout=60_000)
        await usable(page, "Edit", "Discard")
        await expect(page.get_by_role("button", name="Save")).to_have_count(0)  # not ready yet
        await page.screenshot(path=ARTIFACTS / "flow-1-draft-needs-slack.png")

        # 2. the chat's link opens the connect form; the bot token is checked and saved
        async with page.context.expect_page() as opened:
            await page.get_by_role("link", name="open the connect form").last.click()
        form = await opened.value
        token = form.get_by_label("Bot Token")
        await expect(token).to_be_visible(timeout=30_000)
        assert await form.locator("#name").input_value() == "team-slack"
        await token.fill(saas.slack_token)
        await form.get_by_role("button", name="Check and save").click()
        await expect(form.locator("#message")).to_contain_text("Connected: team-slack", timeout=30_000)
        await form.screenshot(path=ARTIFACTS / "flow-2-connected.png")
        await form.close()

        # 3. back in the chat: the draft is checked again and is ready
        fake_llm.script([ToolCall("validate_spec", {}), Text("team-slack is connected; the draft is ready.")])
        await page.bring_to_front()
        await page.locator("#chat-input").fill("check again")
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("the draft is ready")).to_be_visible(timeout=60_000)
        await usable(page, "Test run", "Save", "Schedule", "Edit", "Discard")

        # 4. save, 5. schedule with a preset (a saved agent gets a new version at once)
        await page.get_by_role("button", name="Save").last.click()
        await expect(page.get_by_text(re.compile(r"Saved .*sales-digest.* \(version 1\)"))).to_be_visible(
            timeout=30_000
        )
        await usable(page, "Test run")
        await page.get_by_role("button", name="Schedule").last.click()
        await page.get_by_role("button", name="Every day at 09:00").click()
        await expect(page.get_by_text(re.compile(r"Scheduled: every day at 09:00"))).to_be_visible(
            timeout=30_000
        )
        await usable(page, "Test run", "Save", "Schedule", "Edit", "Discard")
        await until_saved(db, alpha, "Scheduled: every day at 09:00")
        await page.screenshot(path=ARTIFACTS / "flow-3-scheduled.png")

        # 6. reload the page, 7. save again: the same agent, its version 2 with the schedule
        await page.reload()  # the chat's address stays /chat: a reload opens the home screen
        await expect(page.get_by_role("button", name="Csv analysis")).to_be_visible(timeout=30_000)
        await page.get_by_text(REQUEST).first.click()  # the conversation, from the sidebar
        await expect(page.get_by_text("The draft sales-digest is as you left it")).to_be_visible(
            timeout=30_000
        )
        await usable(page, "Test run", "Save", "Schedule", "Edit", "Discard")
        await page.get_by_role("button", name="Save").last.click()
        await expect(page.get_by_text(re.compile(r"Saved .*sales-digest.* \(version 2\)"))).to_be_visible(
            timeout=30_000
        )
        await usable(page, "Test run")
        async with db.session(alpha.identity) as s:
            agents = await s.agents.list(alpha.team_id)
            assert [a.name for a in agents] == ["sales-digest"]
            version = await s.agents.require_version(agents[0])
        assert version.version == 2
        assert [t["schedule"]["cron"] for t in version.spec["spec"]["triggers"]] == ["0 9 * * *"]
        agent_id = agents[0].id

        # 8. attach the CSV and test-run: the answer carries its figures (from the sandbox's analysis)
        figures: list[str] = []

        def post(request: RecordedRequest) -> ToolCall:
            figures.append(_figures(_tool_result(request)))
            return ToolCall("slack_post_message", {"channel": "#sales", "text": figures[0]})

        fake_llm.script(
            [
                ToolCall("csv_summarize", {}),
                post,
                lambda request: Text(f"Posted to #sales. {figures[0]}"),
            ]
        )
        async with page.expect_response(lambda r: "/project/file" in r.url, timeout=30_000) as uploaded:
            await page.locator("#upload-button-input").set_input_files(str(sales))
        assert (await uploaded.value).status == 200
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("sales.csv will be in the working directory")).to_be_visible(
            timeout=30_000
        )
        await usable(page, "Test run", "Save", "Schedule", "Edit", "Discard")
        await page.get_by_role("button", name="Test run").last.click()
        await expect(page.get_by_text("completed").last).to_be_visible(timeout=120_000)
        answer = page.get_by_text(re.compile(r"Posted to #sales\. amount: total 8519")).last
        await expect(answer).to_be_visible(timeout=30_000)
        await expect(answer).to_contain_text("south 4898, north 3621")
        await usable(page, "Test run")
        await page.screenshot(path=ARTIFACTS / "flow-4-test-run.png")
        await browser.close()

    # what is stored: one agent, scheduled; the run read the attached file and posted its figures
    async with db.session(alpha.identity) as s:
        agents = await s.agents.list(alpha.team_id)
        assert [a.id for a in agents] == [agent_id]
        version = await s.agents.require_version(agents[0])
        runs = await s.executions.list(team_id=alpha.team_id)
    assert [t["schedule"]["cron"] for t in version.spec["spec"]["triggers"]] == ["0 9 * * *"]
    assert [(r.status, r.inputs["file"]) for r in runs] == [("completed", "sales.csv")]
    async with db.session(Identity.system()) as s:
        rows = await (
            await s.agents.conn.execute(
                "select cron from public.agent_schedules where agent_id = %s", (agent_id,)
            )
        ).fetchall()
    assert rows == [("0 9 * * *",)]
    assert [m["text"] for m in saas.slack.messages[channel]] == [figures[0]]
    log = (tmp_path / "chainlit.log").read_text()
    assert tracebacks(log) == [], log[-3000:]
