"""E-mail about a waiting call: an admin names addresses (`coherex approvals notify --email`), the
platform mails them through its SMTP server (COHEREX_SMTP_URL; here a real SMTP server, aiosmtpd)
with the agent, the call's redacted arguments and links to a page where a member approves or
rejects; opening a link decides nothing."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from coherex import mail
from coherex.errors import BackendError
from coherex.settings import Settings, reset_settings_cache
from coherex.testing.api import ApiServer
from coherex.testing.fake_openai import Text, ToolCall
from coherex.testing.fake_smtp import FakeSMTP

from .conftest import spec
from .test_api_cli import coherex

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
LEAKY_POST = ToolCall(
    "slack_post_message", {"channel": "#ops", "text": f"Deploy done, token {TOKEN}"}, id="call_post"
)


@pytest.fixture
def smtp():
    with FakeSMTP() as server:
        yield server


@pytest.fixture
def mail_env(world, settings_env, smtp, monkeypatch):
    """The platform's SMTP server and its address (links) for this process and the CLI's."""
    with ApiServer() as api:
        extra = {"COHEREX_SMTP_URL": smtp.url, "COHEREX_PUBLIC_URL": api.base_url}
        for k, v in extra.items():
            monkeypatch.setenv(k, v)
        reset_settings_cache()
        yield {
            **os.environ,
            **settings_env,
            **extra,
            "COHEREX_USER": "acme@example.com",
            "COHEREX_TEAM": "acme",
        }
    reset_settings_cache()


async def test_a_waiting_call_is_mailed_with_its_redacted_arguments_and_links_to_decide(
    world, mail_env, smtp
):
    without_smtp = {k: v for k, v in mail_env.items() if k != "COHEREX_SMTP_URL"}
    code, out = coherex(without_smtp, "approvals", "notify", "--email", "ops@acme.com")
    assert code == 1 and "COHEREX_SMTP_URL is not set" in out and "Traceback" not in out
    code, out = coherex(mail_env, "approvals", "notify", "--email", "ops@acme.com, not-an-address")
    assert code == 1 and "not-an-address is not an e-mail address" in out
    code, out = coherex(mail_env, "approvals", "notify", "--email", "ops@acme.com, lead@acme.com")
    assert code == 0 and "mailed to ops@acme.com, lead@acme.com" in out, out

    agent = await world.agent(spec())
    world.llm.script([LEAKY_POST, Text("Posted.")])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent, trigger="schedule")
    assert (await runtime.run(ex.id)).status == "waiting_approval"
    (approval,) = await world.pending(ex.id)

    (message,) = smtp.wait_for(1)
    assert smtp.recipients == [["ops@acme.com", "lead@acme.com"]]
    assert message["Subject"] == "[Coherex] poster waits for approval: slack_post_message"
    body = message.get_content()
    assert "The agent poster (team acme) waits for approval" in body
    assert '"channel": "#ops"' in body and "[redacted]" in body and TOKEN not in body
    link = f"{mail_env['COHEREX_PUBLIC_URL']}/approvals/{approval.id}?team=acme"
    assert f"Approve: {link}&decision=approve" in body and f"Reject:  {link}&decision=reject" in body

    # a mail scanner (or the person) opening the link gets the page; nothing is decided by it
    async with httpx.AsyncClient() as client:
        page = await client.get(f"{link}&decision=approve")
    assert page.status_code == 200 and "A tool call waits for approval" in page.text
    assert [a.id for a in await world.pending(ex.id)] == [approval.id]
    assert world.posted() == []


async def test_a_password_is_never_sent_to_a_server_without_starttls(smtp):
    settings = Settings(smtp_url=f"smtp://robot:s3cret-pass@127.0.0.1:{smtp.port}")
    with pytest.raises(BackendError) as caught:
        await mail.send(["ops@acme.com"], "hello", "text", settings=settings)
    assert "does not offer STARTTLS, so the password was not sent" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert smtp.messages == []
    # without a password (a relay on the same host) the same server takes the mail
    await mail.send(["ops@acme.com"], "hello", "text", settings=Settings(smtp_url=smtp.url))
    assert [m["Subject"] for m in smtp.wait_for(1)] == ["hello"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web_with_mail(world, settings_env, smtp, tmp_path, monkeypatch):
    """The real web process (API, chat, pages) at COHEREX_PUBLIC_URL, mailing through the fake SMTP."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    extra = {"COHEREX_SMTP_URL": smtp.url, "COHEREX_PUBLIC_URL": base}
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    env = {**os.environ, **settings_env, **extra, "OPENAI_BASE_URL": world.llm.base_url}
    env.pop("CHAINLIT_AUTH_SECRET", None)
    log = open(tmp_path / "web.log", "w")  # noqa: SIM115 (closed after the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "coherex", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "web.log").read_text()
            time.sleep(0.2)
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    reset_settings_cache()


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_the_mails_approve_link_opens_a_page_where_a_signed_in_member_approves(
    world, web_with_mail, smtp
):
    from playwright.async_api import async_playwright, expect

    from coherex.testing.browser import launch

    from .test_approvals import POST

    async with world.db.session(world.owner) as s:
        assert await s.approvals.set_team_notify(world.team_id, {"email": ["ops@acme.com"]})
    agent = await world.agent(spec())
    world.llm.script([POST, Text("Posted.")])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent, trigger="webhook")
    assert (await runtime.run(ex.id)).status == "waiting_approval"
    (message,) = smtp.wait_for(1)
    (link,) = re.findall(r"Approve: (\S+)", message.get_content())
    assert link.startswith(f"{web_with_mail}/approvals/")

    async with async_playwright() as p:
        browser = await launch(p)
        page = await browser.new_page()
        await page.goto(link)  # not signed in yet: the page says how
        await expect(page.get_by_text("Sign in first")).to_be_visible(timeout=30_000)
        await page.goto(f"{web_with_mail}/chat")
        await page.locator("#email").fill("acme@example.com")
        await page.locator("#password").fill("correct horse")
        await page.locator("button[type=submit]").click()
        await expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
        await page.goto(link)
        await expect(page.get_by_text("slack_post_message (slack.post_message)")).to_be_visible(
            timeout=30_000
        )
        await expect(page.get_by_text('"text": "Deploy is done."')).to_be_visible()
        assert world.posted() == []  # opening the page decided nothing
        await page.get_by_role("button", name="Approve").click()
        await expect(page.get_by_text("Approved: the call runs")).to_be_visible(timeout=30_000)
        await page.reload()  # decided once: the page now says so and offers no buttons
        await expect(page.get_by_text("This call was already approved")).to_be_visible(timeout=30_000)
        await expect(page.get_by_role("button", name="Approve")).to_be_hidden()
        await browser.close()
    final = await runtime.run(ex.id)
    assert final.status == "completed", final.error
    assert world.posted() == ["Deploy is done."]
    async with world.db.session(world.owner) as s:
        assert (
            await s.approvals.get((await s.approvals.of_execution(ex.id))[0].id)
        ).decided_by == world.user_id
