"""Fixtures: the fake SaaS server, settings pointing at it, a team and an agent with grants."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass

import pytest

from coherex.settings import reset_settings_cache
from coherex.store.db import Database, Identity
from coherex.testing.fake_saas import FakeSaaS


def new_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture
def settings_env(saas: FakeSaaS, tmp_path, monkeypatch):
    """Point Coherex at the fake services; a vault key of its own; small retry limits."""
    env = {
        **saas.env(),
        "COHEREX_SECRET_KEY": new_key(),
        "COHEREX_DATA_DIR": str(tmp_path / "data"),
        "COHEREX_INTEGRATION_MAX_RETRY_AFTER": "5",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield env
    reset_settings_cache()


@dataclass
class World:
    db: Database
    saas: FakeSaaS
    team_id: object
    user_id: object

    @property
    def admin(self) -> Identity:
        return Identity.user(self.user_id)

    async def agent(self, name: str, grants: dict[str, str]) -> object:
        """An agent with `grants` = {source name: access}; → its id."""
        async with self.db.session(self.admin) as s:
            saved = await s.agents.save_spec(self.team_id, {"metadata": {"name": name}}, "")
            pairs = []
            for source_name, access in grants.items():
                source = await s.sources.get_by_name(self.team_id, source_name)
                pairs.append((source.id, access))
            await s.agents.set_data_sources(saved.agent, pairs)
        return saved.agent.id


@pytest.fixture
async def world(db: Database, saas: FakeSaaS, settings_env, tenant_factory) -> World:
    tenant = await tenant_factory("acme")
    return World(db, saas, tenant.team_id, tenant.user_id)
