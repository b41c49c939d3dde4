"""GitHub App authentication: an installation token minted with the app's private key (RS256 JWT),
cached until it nears expiry, through the real client against the fake GitHub."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from coherex.errors import UserError
from coherex.integrations import IntegrationError, invoke_tool
from coherex.integrations.service import add_source, check_source


def _key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


async def test_github_app_installation_token(world):
    private, public = _key_pair()
    world.saas.register_github_app("4242", public, installation_id=7)
    world.saas.github.add_issue("acme/app", "Crash on start")
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "github",
        "gh-app",
        credentials={"app_id": "4242", "private_key": private, "installation_id": 7},
    )
    agent = await world.agent("triage", {"gh-app": "read"})

    for _ in range(2):
        found = await invoke_tool(
            world.db,
            team_id=world.team_id,
            agent_id=agent,
            tool_name="github.list_issues",
            data_source="gh-app",
            args={"repo": "acme/app"},
        )
        assert [i["title"] for i in found["issues"]] == ["Crash on start"]
    minted = [r for r in world.saas.of("github") if r.path.endswith("/access_tokens")]
    assert len(minted) == 1  # the installation token is reused until it nears expiry

    _, check = await check_source(world.db, world.admin, world.team_id, "gh-app")
    assert check.ok and "GitHub App 4242" in check.summary and "1 repositories" in check.summary


async def test_a_wrong_app_key_is_refused_clearly(world):
    private, _ = _key_pair()
    _, other_public = _key_pair()
    world.saas.register_github_app("4242", other_public, installation_id=7)
    world.saas.github.add_issue("acme/app", "x")
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "github",
        "gh-app",
        credentials={"app_id": "4242", "private_key": private, "installation_id": 7},
    )
    agent = await world.agent("triage", {"gh-app": "read"})
    with pytest.raises(IntegrationError) as err:
        await invoke_tool(
            world.db,
            team_id=world.team_id,
            agent_id=agent,
            tool_name="github.list_issues",
            data_source="gh-app",
            args={"repo": "acme/app"},
        )
    assert "GitHub" in str(err.value) and "BEGIN PRIVATE KEY" not in str(err.value)


async def test_credentials_need_a_token_or_a_whole_app(world):
    with pytest.raises(UserError, match="token, or app_id"):
        await add_source(world.db, world.admin, world.team_id, "github", "half", credentials={"app_id": "1"})
