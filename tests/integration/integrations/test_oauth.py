"""The OAuth2 flow through our FastAPI router and the fake provider: PKCE, state, refresh on
expiry, a failed refresh, revocation on delete."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI, Header

from coherex.api.oauth import Caller, build_router
from coherex.integrations import IntegrationError, invoke_tool, remove_source


@pytest.fixture
def app_client(world):
    def caller(x_user: str = Header(), x_team: str = Header()) -> Caller:
        return Caller(UUID(x_user), UUID(x_team))

    app = FastAPI()
    app.include_router(build_router(get_db=lambda: world.db, get_caller=caller))
    headers = {"x-user": str(world.user_id), "x-team": str(world.team_id)}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost:8000", headers=headers
    )


async def sign_in(app_client, source_type: str, name: str) -> tuple[httpx.Response, str]:
    """Start, let the fake provider 'click Allow', and return the callback's answer and state."""
    start = await app_client.get(f"/oauth/{source_type}/start", params={"name": name})
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.headers["location"])
    assert consent.status_code == 302
    back = urlsplit(consent.headers["location"])
    state = parse_qs(back.query)["state"][0]
    return await app_client.get(f"{back.path}?{back.query}"), state


async def test_gmail_flow_uses_pkce_and_state_then_refreshes_before_expiry(world, app_client):
    saas = world.saas
    saas.gmail.add_message(sender="ann@example.com", subject="Hello", body="Hi")
    saas.google_expires_in = 60  # shorter than the refresh margin: the first call refreshes

    answer, state = await sign_in(app_client, "gmail", "work-mail")
    assert answer.status_code == 200 and "work-mail" in answer.text

    auth = next(r for r in saas.requests if r.path.endswith("/authorize"))
    assert auth.query["code_challenge_method"] == "S256" and auth.query["state"] == state
    exchange = next(r for r in saas.of("oauth") if r.path.endswith("/token"))
    assert exchange.body["grant_type"] == "authorization_code" and len(exchange.body["code_verifier"]) >= 43

    # the same state cannot be used twice; a forged one is refused
    assert (await app_client.get("/oauth/callback", params={"code": "x", "state": state})).status_code == 403
    assert (
        await app_client.get("/oauth/callback", params={"code": "x", "state": "forged"})
    ).status_code == 403

    agent = await world.agent("digest", {"work-mail": "read"})
    found = await invoke_tool(
        world.db,
        team_id=world.team_id,
        agent_id=agent,
        tool_name="gmail.search_messages",
        data_source="work-mail",
        args={"query": "hello"},
    )
    assert found["messages"][0]["subject"] == "Hello"
    refreshes = [r for r in saas.of("oauth") if (r.body or {}).get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1

    # the refresh token stops working: the source is marked failing with a plain message
    saas.refuse_refresh = True
    with pytest.raises(IntegrationError, match="Refreshing the Google access token failed") as err:
        await invoke_tool(
            world.db,
            team_id=world.team_id,
            agent_id=agent,
            tool_name="gmail.search_messages",
            data_source="work-mail",
            args={"query": "hello"},
        )
    assert "invalid_grant" in str(err.value)
    async with world.db.session(world.admin) as s:
        source = await s.sources.get_by_name(world.team_id, "work-mail")
    assert source.status == "failing" and "Reconnect" in source.last_error

    # removing the source revokes the grant at Google
    notes = await remove_source(world.db, world.admin, world.team_id, "work-mail")
    assert notes == ["credentials revoked at the provider"]
    assert any(r.path.endswith("/revoke") for r in saas.of("oauth"))


async def test_github_and_slack_connect_through_oauth(world, app_client):
    answer, _ = await sign_in(app_client, "github", "gh")
    assert answer.status_code == 200
    answer, _ = await sign_in(app_client, "slack", "chat")
    assert answer.status_code == 200
    world.saas.slack.add_channel("general")
    agent = await world.agent("a", {"gh": "read", "chat": "read"})
    assert await invoke_tool(
        world.db,
        team_id=world.team_id,
        agent_id=agent,
        tool_name="slack.list_channels",
        data_source="chat",
        args={},
    )
    # tokens our flow created are revoked when the source goes
    await remove_source(world.db, world.admin, world.team_id, "chat")
    await remove_source(world.db, world.admin, world.team_id, "gh")
    assert any(r.path.endswith("auth.revoke") for r in world.saas.of("slack"))
    assert any(r.method == "DELETE" and "/applications/" in r.path for r in world.saas.of("github"))


async def test_wrong_pkce_verifier_and_denied_consent(world, app_client):
    start = await app_client.get("/oauth/gmail/start", params={"name": "work-mail"})
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    denied = await app_client.get("/oauth/callback", params={"error": "access_denied", "state": state})
    assert denied.status_code == 400 and "did not grant access" in denied.text
    # a code for which the challenge does not match the verifier we hold (intercepted code)
    start = await app_client.get("/oauth/gmail/start", params={"name": "work-mail"})
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    q = parse_qs(urlsplit(start.headers["location"]).query)
    async with httpx.AsyncClient() as browser:
        other = await browser.get(
            f"{world.saas.url}/oauth/google/authorize",
            params={
                "client_id": q["client_id"][0],
                "redirect_uri": q["redirect_uri"][0],
                "state": state,
                "code_challenge": "A" * 43,
                "code_challenge_method": "S256",
            },
        )
    code = parse_qs(urlsplit(other.headers["location"]).query)["code"][0]
    bad = await app_client.get("/oauth/callback", params={"code": code, "state": state})
    assert bad.status_code == 400 and "invalid_grant" in bad.text
    async with world.db.session(world.admin) as s:
        assert await s.sources.get_by_name(world.team_id, "work-mail") is None
