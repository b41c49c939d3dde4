"""Fixtures for the attack suite: the real API over HTTP, the fake LLM and SaaS servers, teams
with one person per role. (ApiServer mirrors tests/integration/api/conftest.py.)"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from dataclasses import dataclass
from uuid import UUID

import httpx
import pytest
import uvicorn

from coherex.settings import reset_settings_cache
from coherex.store.db import Database, Identity
from coherex.testing.fake_openai import FakeOpenAI
from coherex.testing.fake_saas import FakeSaaS

ROLES = ("owner", "admin", "member", "viewer")


class ApiServer:
    def __init__(self):
        from coherex.web import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(chat=False), host="127.0.0.1", port=self.port, log_level="critical")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def saas():
    with FakeSaaS() as server:
        yield server


@pytest.fixture
def api_env(cli_env, fake_llm, saas, monkeypatch):
    env = {**saas.env(), "OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": fake_llm.api_key,
           "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
           "COHEREX_API_RATE": "1000", "COHEREX_API_BURST": "1000"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield env
    reset_settings_cache()


@pytest.fixture
def api(api_env):
    with ApiServer() as server:
        yield server


@pytest.fixture
async def keys(db, two_teams) -> tuple[str, str]:
    """API keys of alpha's and bravo's owners."""
    out = []
    for tenant in two_teams:
        async with db.session(tenant.identity) as s:
            out.append((await s.api_keys.create(tenant.team_id, "tests"))[1])
    return out[0], out[1]


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
