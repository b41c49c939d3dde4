"""Cross-site request forgery with the chat's sign-in cookie (issue 16, finding 8): a foreign page
makes the browser send `pause`, `resume` or `execute` with the cookie and a `text/plain` body (no
CORS preflight). Refused unless the request comes from the platform's own origin or carries
`X-Coherex-CSRF`; API keys are unaffected."""

from __future__ import annotations

import pytest

from coherex.settings import reset_settings_cache
from coherex.store.db import Identity
from coherex.testing.api import ApiServer

SPEC = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: target}\nspec:\n  instructions: x\n"
EVIL = "http://evil.example"


@pytest.fixture
def chat_secret(monkeypatch):
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "a-chat-secret-for-tests-0123456789abcdef")


def _cookie(tenant) -> dict[str, str]:
    from chainlit.auth import create_jwt
    from chainlit.user import User

    return {
        "access_token": create_jwt(User(identifier=tenant.email, metadata={"user_id": str(tenant.user_id)}))
    }


async def _state(db, agent_id) -> tuple[str, int]:
    async with db.session(Identity.system()) as s:
        agent = await s.agents.get(agent_id)
        return agent.status, len(await s.executions.list(limit=1000))


@pytest.fixture
async def target(api, keys, chat_secret):
    async with api.client(keys[0]) as c:
        return (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]


async def test_cookie_requests_from_another_site_change_nothing(api, db, keys, two_teams, target):
    alpha, _ = two_teams
    before = await _state(db, target)
    forged = [
        {"Origin": EVIL},
        {"Referer": f"{EVIL}/page"},
        {},  # no Origin or Referer at all
        {"Origin": "null"},
        {"Origin": f"{api.base_url}.evil.example"},
    ]
    async with api.client() as browser:
        browser.cookies.update(_cookie(alpha))
        for headers in forged:
            for action in ("pause", "resume", "execute"):
                r = await browser.post(
                    f"/api/agents/{target}/{action}",
                    content=b"x=1",
                    headers={**headers, "Content-Type": "text/plain"},
                )
                assert r.status_code == 403, (action, headers, r.status_code, r.text)
                error = r.json()["error"]
                assert error["code"] == "csrf_refused" and "COHEREX_PUBLIC_URL" in error["hint"]
            r = await browser.delete(f"/api/agents/{target}", headers=headers)
            assert r.status_code == 403
    assert await _state(db, target) == before  # not paused, no run, not deleted


async def test_own_origin_the_csrf_header_and_api_keys_still_work(api, db, keys, two_teams, target):
    alpha, _ = two_teams
    async with api.client() as browser:
        browser.cookies.update(_cookie(alpha))
        assert (
            await browser.post(f"/api/agents/{target}/pause", headers={"Origin": api.base_url})
        ).status_code == 200
        assert (
            await browser.post(
                f"/api/agents/{target}/resume", headers={"Referer": f"{api.base_url}/chat/thread/1"}
            )
        ).status_code == 200
        assert (
            await browser.post(f"/api/agents/{target}/pause", headers={"X-Coherex-CSRF": "1"})
        ).status_code == 200
        assert (
            await browser.get("/api/agents", headers={"Origin": EVIL})
        ).status_code == 200  # reads: not state-changing
    async with api.client(keys[0]) as script:  # an API key from anywhere is not a cookie: unaffected
        r = await script.post(f"/api/agents/{target}/resume", headers={"Origin": EVIL})
        assert r.status_code == 200
    assert (await _state(db, target))[0] == "active"


async def test_with_a_public_url_only_that_origin_counts(
    api_env, db, two_teams, chat_secret, monkeypatch, keys
):
    alpha, _ = two_teams
    monkeypatch.setenv("COHEREX_PUBLIC_URL", "https://coherex.example.com/chat")
    reset_settings_cache()
    with ApiServer() as server:
        async with server.client(keys[0]) as c:
            agent_id = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]
        async with server.client() as browser:
            browser.cookies.update(_cookie(alpha))
            own_host = await browser.post(
                f"/api/agents/{agent_id}/pause", headers={"Origin": server.base_url}
            )
            assert own_host.status_code == 403  # behind the public URL, the bare host is not our origin
            r = await browser.post(
                f"/api/agents/{agent_id}/pause", headers={"Origin": "https://coherex.example.com"}
            )
            assert r.status_code == 200, r.text
