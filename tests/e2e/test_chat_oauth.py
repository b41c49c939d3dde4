"""Sign in to the chat with an identity provider (Chainlit's generic OAuth provider against the
fake OAuth server): a person Coherex knows gets in, a stranger does not."""

from __future__ import annotations

from pathlib import Path

import pytest

from coherex.testing.browser import launch
from coherex.testing.fake_saas import CLIENTS, FakeSaaS
from coherex.testing.web import WebProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture
def oauth_chat(db_urls, two_teams, tmp_path):
    with FakeSaaS() as saas:
        env = {
            "DATABASE_URL": db_urls.app,
            "COHEREX_DATA_DIR": str(tmp_path / "data"),
            "OAUTH_GENERIC_CLIENT_ID": CLIENTS["google"][0],
            "OAUTH_GENERIC_CLIENT_SECRET": CLIENTS["google"][1],
            "OAUTH_GENERIC_AUTH_URL": f"{saas.url}/oauth/google/authorize",
            "OAUTH_GENERIC_TOKEN_URL": f"{saas.url}/oauth/google/token",
            "OAUTH_GENERIC_USER_INFO_URL": f"{saas.url}/oauth/userinfo",
            "OAUTH_GENERIC_SCOPES": "openid email",
            "OAUTH_GENERIC_NAME": "company-sso",
        }
        with WebProcess(env, tmp_path / "web.log") as web:
            yield saas, f"{web.url}/chat"


async def test_sign_in_with_the_identity_provider(oauth_chat, two_teams):
    from playwright.async_api import async_playwright, expect

    saas, url = oauth_chat
    alpha, _ = two_teams
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as p:
        browser = await launch(p)

        saas.signed_in_email = alpha.email  # a person Coherex knows
        page = await (await browser.new_context()).new_page()
        await page.goto(url)
        await page.get_by_role("button", name="company-sso", exact=False).click()
        await expect(page.locator("#chat-input")).to_be_visible(timeout=30_000)
        await expect(page.get_by_role("button", name="Csv analysis")).to_be_visible(timeout=30_000)
        await page.screenshot(path=ARTIFACTS / "chat-oauth-signed-in.png")

        saas.signed_in_email = "stranger@example.com"  # the provider knows them; Coherex does not
        page = await (await browser.new_context()).new_page()
        await page.goto(url)
        await page.get_by_role("button", name="company-sso", exact=False).click()
        # back on the sign-in page, not in the chat
        await expect(page.get_by_role("button", name="company-sso", exact=False)).to_be_visible(
            timeout=30_000
        )
        await expect(page.get_by_text("Sign in failed")).to_be_visible(timeout=30_000)
        assert await page.locator("#chat-input").count() == 0
        await page.screenshot(path=ARTIFACTS / "chat-oauth-refused.png")
        await browser.close()
