"""A browser signed in to the chat can call the API with its session (no API key)."""

from __future__ import annotations

import pytest


@pytest.fixture
def chat_secret(monkeypatch):
    monkeypatch.setenv("CHAINLIT_AUTH_SECRET", "a-chat-secret-for-tests-0123456789abcdef")


def _cookie(user_id, email: str) -> dict[str, str]:
    from chainlit.auth import create_jwt
    from chainlit.user import User

    return {"access_token": create_jwt(User(identifier=email, metadata={"user_id": str(user_id)}))}


async def test_chat_session_calls_the_api_as_that_person(chat_secret, api, keys, two_teams):
    alpha, bravo = two_teams
    spec = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: mine}\nspec:\n  instructions: x\n"
    async with api.client(keys[0]) as c:
        assert (await c.post("/api/agents", json={"spec": spec})).status_code == 201

    async with api.client() as browser:
        browser.cookies.update(_cookie(alpha.user_id, alpha.email))
        r = await browser.get("/api/agents")
        assert r.status_code == 200 and [a["name"] for a in r.json()] == ["mine"]
        other_team = await browser.get("/api/agents", headers={"X-Coherex-Team": "bravo"})
        assert other_team.status_code == 401 and "not a member" in other_team.json()["error"]["message"]
        # links from the chat name the team in the query instead
        assert (await browser.get("/api/agents", params={"team": "bravo"})).status_code == 401
        assert (await browser.get("/api/agents", params={"team": "alpha"})).json()[0]["name"] == "mine"

    async with api.client() as bob:
        bob.cookies.update(_cookie(bravo.user_id, bravo.email))
        assert (await bob.get("/api/agents")).json() == []  # bravo's own team: none of alpha's agents

    async with api.client() as forger:
        forged = _cookie(alpha.user_id, alpha.email)["access_token"][:-4] + "AAAA"
        forger.cookies.update({"access_token": forged})
        assert (await forger.get("/api/agents")).status_code == 401
