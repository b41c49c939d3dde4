"""OAuth 2.1 for remote MCP data sources: tokens kept in the source's credentials (the vault), an
access token near its expiry refreshed *before* the call, at the token endpoint found at sign-in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from coherex.integrations.base import ServiceError
from coherex.settings import reset_settings_cache
from coherex.testing.fake_mcp_oauth import CLIENT_ID, FakeOAuthMcp
from coherex.tools.providers.mcp.client import open_session
from coherex.tools.providers.mcp.config import McpConfig, McpCredentials, OAuthState


@pytest.fixture
def fake(monkeypatch):
    with FakeOAuthMcp() as server:
        monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"127.0.0.1:{server.port}")
        reset_settings_cache()
        yield server
    reset_settings_cache()


def signed_in(fake: FakeOAuthMcp, *, expires_in: float, refresh: str | None) -> McpCredentials:
    """What a sign-in left in the vault: tokens, the pre-registered client, what discovery found."""
    base = fake.base_url
    return McpCredentials(
        oauth=OAuthState(
            client_id=CLIENT_ID,
            access_token=SecretStr("at-old"),
            refresh_token=SecretStr(refresh) if refresh else None,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            server_metadata={
                "issuer": base,
                "authorization_endpoint": f"{base}/authorize",
                "token_endpoint": f"{base}/oauth/token",
                "response_types_supported": ["code"],
            },
            resource_metadata={"resource": f"{base}/mcp", "authorization_servers": [base]},
        )
    )


async def test_a_token_about_to_expire_is_refreshed_before_the_call_and_saved(fake):
    fake.issue("at-old", "rt-1")  # still accepted by the server: only its expiry says to refresh
    saved: list[McpCredentials] = []

    async def save(creds: McpCredentials) -> None:
        saved.append(creds.model_copy(deep=True))

    creds = signed_in(fake, expires_in=30, refresh="rt-1")  # inside the 60 s margin
    async with open_session("docs", McpConfig(url=f"{fake.base_url}/mcp"), creds, save=save) as s:
        assert (await s.call_tool("whoami", {})).text == "signed in"
    assert [r["grant_type"] for r in fake.token_requests] == ["refresh_token"]
    assert "at-old" not in fake.seen_tokens  # the lapsing token was never sent
    stored = saved[-1].oauth
    assert stored.access_token.get_secret_value() == "at-fresh-1"
    assert stored.refresh_token.get_secret_value() == "rt-fresh-1"
    assert stored.expires_at > datetime.now(UTC) + timedelta(minutes=50)


async def test_a_valid_token_is_used_as_it_is(fake):
    fake.issue("at-old", "rt-1")
    creds = signed_in(fake, expires_in=3600, refresh="rt-1")
    async with open_session("docs", McpConfig(url=f"{fake.base_url}/mcp"), creds) as s:
        assert (await s.call_tool("whoami", {})).text == "signed in"
    assert fake.token_requests == [] and set(fake.seen_tokens) == {"at-old"}


async def test_an_expired_sign_in_that_cannot_be_refreshed_asks_to_sign_in_again(fake):
    fake.issue("at-other", "rt-other")  # the server no longer accepts ours
    creds = signed_in(fake, expires_in=-60, refresh=None)
    with pytest.raises(ServiceError, match="coherex sources add mcp docs") as caught:
        async with open_session("docs", McpConfig(url=f"{fake.base_url}/mcp"), creds):
            pass
    assert caught.value.auth and "at-old" not in caught.value.message


async def test_through_the_platform_the_refreshed_tokens_are_sealed_back_into_the_vault(
    fake, db, two_teams, monkeypatch
):
    from coherex.integrations.service import add_source, invoke, open_source
    from coherex.integrations.vault import generate_key
    from coherex.services.agents import apply_spec
    from coherex.tools.port import ToolCall
    from coherex.tools.providers.mcp import provider as mcp

    monkeypatch.setenv("COHEREX_SECRET_KEY", generate_key())
    monkeypatch.setenv("DATABASE_URL", db.url)  # as in a worker: discovery stores a refresh through it
    reset_settings_cache()
    team, _ = two_teams
    fake.issue("at-old", "rt-1")
    source = await add_source(
        db,
        team.identity,
        team.team_id,
        "mcp",
        "docs",
        config={"url": f"{fake.base_url}/mcp"},
        credentials=signed_in(fake, expires_in=30, refresh="rt-1"),
    )
    spec = (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: a, description: d}\n"
        "spec:\n  instructions: Hi.\n"
    )
    async with db.session(team.identity) as s:
        agent = (await apply_spec(s, team.team_id, spec)).agent
        await s.agents.set_data_sources(agent, [(source.id, "read")])
    try:
        whoami = next(
            t for t in await mcp.PROVIDER.discover(await open_source(db, source)) if t.name == "whoami"
        )
        result = await invoke(ToolCall(db, team.team_id, agent.id, None, whoami), mcp.PROVIDER, "docs", {})
    finally:
        await mcp.POOL.close_all()
    assert result.text == "signed in"
    stored = (await open_source(db, source)).call.credentials.oauth  # decrypted from the vault again
    assert stored.access_token.get_secret_value().startswith("at-fresh-")
    assert stored.refresh_token.get_secret_value().startswith("rt-fresh-")
