""" "Install this agent from REF" in a real browser, against the real registry and web process:
the chat shows what the agent does, its tools and its signature status with an Install button;
nothing is saved before the click, and the click saves the digest shown and opens it as the
draft (ready to test-run). The server log has no traceback."""

from __future__ import annotations

import base64
import os

import pytest

from coherex.distribution import service
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.browser import launch
from tests.e2e._chat import login, serve_chat, tracebacks
from tests.integration.oci import conftest as oci
from tests.integration.oci.conftest import PASSWORD, TEMPLATES, USER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
registry = oci.registry  # the real registry of the OCI tests (a fixture)


@pytest.fixture
def registry_env(registry, tmp_path, monkeypatch):
    """The registry allowed by the egress guard and a vault key, for this process and the web one."""
    env = {
        "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "COHEREX_EGRESS_ALLOW": registry.host,
        "DOCKER_CONFIG": str(tmp_path / "docker"),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield env
    reset_settings_cache()


@pytest.fixture
def chat_server(db_urls, two_teams, fake_llm, tmp_path, registry_env):  # noqa: F811
    yield from serve_chat(db_urls, fake_llm, tmp_path, **registry_env)


async def test_install_from_a_registry_shows_the_agent_and_saves_it_on_confirm(
    chat_server,
    db,
    two_teams,
    registry,
    tmp_path,
):
    from playwright.async_api import async_playwright, expect

    alpha, bravo = two_teams
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, (TEMPLATES / "csv-analysis.yaml").read_text())
    for tenant in (alpha, bravo):
        await service.login(db, tenant.identity, tenant.team_id, registry.host, USER, PASSWORD)
    pushed = await service.push(
        db, alpha.identity, alpha.team_id, "csv-analysis", f"{registry.host}/acme/csv-analysis:1"
    )

    async with async_playwright() as p:
        browser = await launch(p)
        page = await login(browser, chat_server, bravo)
        await page.locator("#chat-input").fill(f"install this agent from {pushed.ref}")
        await expect(page.locator("#chat-submit")).to_be_enabled(timeout=30_000)
        await page.locator("#chat-submit").click()
        await expect(page.get_by_text("Nothing is saved until you confirm")).to_be_visible(timeout=60_000)
        await expect(page.get_by_text("Signature: unsigned")).to_be_visible()
        await expect(page.get_by_text("Analyse an uploaded CSV file").first).to_be_visible()
        await expect(page.locator("code", has_text="csv.summarize").first).to_be_visible()
        async with db.session(bravo.identity) as s:
            assert await s.agents.list(bravo.team_id) == []  # shown, not saved

        await page.get_by_role("button", name="Install csv-analysis").click()
        await expect(page.get_by_text("Installed csv-analysis (version 1)")).to_be_visible(timeout=30_000)
        await expect(page.get_by_role("button", name="Test run").last).to_be_visible(timeout=30_000)
        await browser.close()

    async with db.session(Identity.system()) as s, s.conn.cursor() as cur:
        await cur.execute(
            "select a.name, v.source_digest from public.agent_versions v "
            "join public.agents a on a.id = v.agent_id where v.team_id = %s",
            (bravo.team_id,),
        )
        assert await cur.fetchall() == [("csv-analysis", pushed.digest)]
    assert tracebacks((tmp_path / "chainlit.log").read_text()) == []
