"""Fixtures for the attack suite: the real API over HTTP, the fake LLM and SaaS servers, teams
with one person per role."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from uuid import UUID

import pytest

from coherex.settings import reset_settings_cache
from coherex.store.db import Database, Identity
from coherex.testing.api import ApiServer

ROLES = ("owner", "admin", "member", "viewer")


@pytest.fixture
def api_env(cli_env, fake_llm, saas, monkeypatch):
    env = {
        **saas.env(),
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": fake_llm.api_key,
        "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "COHEREX_API_RATE": "1000",
        "COHEREX_API_BURST": "1000",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield env
    reset_settings_cache()


@pytest.fixture
def api(api_env):
    with ApiServer() as server:
        yield server


@dataclass
class Crew:
    """One team with a person per role, and an outsider who belongs to another team."""

    team_id: UUID
    users: dict[str, UUID]
    outsider: UUID
    outsider_team: UUID

    def who(self, role: str) -> Identity:
        return Identity.user(self.outsider if role == "outsider" else self.users[role])


@pytest.fixture
async def crew(db: Database, tenant_factory) -> Crew:
    team = await tenant_factory("crew")
    other = await tenant_factory("elsewhere")
    users = {"owner": team.user_id}
    async with db.session(Identity.system()) as s:
        for role in ROLES[1:]:
            u = await s.users.create(f"{role}@crew.example", display_name=role, password="correct horse")
            await s.members.add(team.team_id, u.id, role)
            users[role] = u.id
    return Crew(team.team_id, users, other.user_id, other.team_id)


@pytest.fixture
def system() -> Identity:
    return Identity.system()
