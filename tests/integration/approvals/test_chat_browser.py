"""The chat in a real browser (Playwright + Chromium) against the real web process: a test run
whose Slack post needs approval pauses with an approval card; clicking Approve resumes it to
completion and the fake Slack received exactly one message."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coherex.testing.browser import launch
from coherex.testing.fake_openai import Text, ToolCall

from .conftest import spec
from .test_approvals import POST

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS = ROOT / "test-artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chat_server(world, settings_env, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        **settings_env,
        "OPENAI_BASE_URL": world.llm.base_url,
        "OPENAI_API_KEY": world.llm.api_key,
        "COHEREX_LLM_MAX_ATTEMPTS": "1",
    }
    env.pop("CHAINLIT_AUTH_SECRET", None)
    log = open(tmp_path / "web.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "coherex", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "web.log").read_text()
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}/chat"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


async def test_a_chat_test_run_waits_with_an_approval_card_and_approve_completes_it(world, chat_server):
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    world.llm.script(
        [
            ToolCall("draft_spec", {"yaml": spec()}),
            Text("Here is your agent: it posts to #ops."),
            POST,
            Text("Posted the update."),
        ]
    )
    async with async_playwright() as p:
        browser = await launch(p)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(chat_server)
        await page.locator("#email").fill("acme@example.com")
        await page.locator("#password").fill("correct horse")
        await page.locator("button[type=submit]").click()
        composer = page.locator("#chat-input")
        await expect(composer).to_be_visible(timeout=30_000)
        await composer.fill("Post the deploy update to #ops")
        send = page.locator("#chat-submit")
        await expect(send).to_be_enabled(timeout=30_000)
        await send.click()
        await expect(page.get_by_text("Here is your agent")).to_be_visible(timeout=60_000)
        await page.get_by_role("button", name="Test run").last.click()
        await expect(page.get_by_text("waits for your approval")).to_be_visible(timeout=30_000)
        await page.screenshot(path=ARTIFACTS / "chat-approval-card.png")
        assert world.posted() == []
        await page.get_by_role("button", name="Approve").last.click()
        await expect(page.get_by_text("Posted the update.").last).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("completed").last).to_be_visible()
        await page.screenshot(path=ARTIFACTS / "chat-approval-completed.png")
        await browser.close()
    assert world.posted() == ["Deploy is done."]


async def test_a_sub_agents_approval_shows_in_the_chat_and_approve_completes_the_root(world, chat_server):
    from playwright.async_api import async_playwright, expect

    from .test_sub_agent_approvals import ASK_POSTER, boss

    await world.agent(spec())  # the poster, whose Slack post needs approval
    world.llm.script(
        [
            ToolCall("draft_spec", {"yaml": boss()}),
            Text("Here is your agent: it asks the poster."),
            ASK_POSTER,
            POST,
            Text("Posted it."),
            Text("The poster posted the update."),
        ]
    )
    async with async_playwright() as p:
        browser = await launch(p)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(chat_server)
        await page.locator("#email").fill("acme@example.com")
        await page.locator("#password").fill("correct horse")
        await page.locator("button[type=submit]").click()
        composer = page.locator("#chat-input")
        await expect(composer).to_be_visible(timeout=30_000)
        await composer.fill("Have the poster post the deploy update")
        send = page.locator("#chat-submit")
        await expect(send).to_be_enabled(timeout=30_000)
        await send.click()
        await expect(page.get_by_text("Here is your agent")).to_be_visible(timeout=60_000)
        await page.get_by_role("button", name="Test run").last.click()
        await expect(page.get_by_text("waits for your approval")).to_be_visible(timeout=30_000)
        await expect(page.get_by_text("waiting approval").last).to_be_visible()  # the root's status
        assert world.posted() == []
        await page.get_by_role("button", name="Approve").last.click()
        await expect(page.get_by_text("The poster posted the update.").last).to_be_visible(timeout=30_000)
        await page.screenshot(path=ARTIFACTS / "chat-sub-agent-approval-completed.png")
        await browser.close()
    assert world.posted() == ["Deploy is done."]
    async with world.db.session(world.owner) as s:
        runs = await s.executions.list(team_id=world.team_id)
    assert sorted(r.status for r in runs) == ["completed", "completed"], [(r.trigger, r.status) for r in runs]
