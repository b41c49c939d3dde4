"""Shared fixtures: a real Postgres (embedded, or TEST_DATABASE_URL), a fresh database per test,
and two teams with users for isolation tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from uuid import UUID

import pytest

from coherex.settings import reset_settings_cache
from coherex.store.db import Database, DatabaseUrls, Identity
from coherex.testing.postgres import TestPostgres

# Tests never read a developer's .env or data dir.
os.environ.setdefault("COHEREX_DATA_DIR", "/tmp/coherex-tests-data")
# ...but share the model files made at first use (the embedder's ONNX export takes ~30 s a data dir)
os.environ.setdefault("COHEREX_MODELS_DIR", "/tmp/coherex-tests-models")


@pytest.fixture(scope="session")
def pg_server():
    server = TestPostgres.start()
    yield server
    server.stop()


@pytest.fixture
def db_urls(pg_server: TestPostgres):
    urls = pg_server.create_database()
    yield urls
    pg_server.drop_database(urls)


@pytest.fixture
async def db(db_urls: DatabaseUrls):
    database = Database(db_urls.app, min_size=1, max_size=4)
    await database.open()
    yield database
    await database.close()


@pytest.fixture
def cli_env(db_urls: DatabaseUrls, tmp_path, monkeypatch):
    """Environment for running `coherex` (in-process or as a subprocess) against the test database."""
    env = {"DATABASE_URL": db_urls.app, "COHEREX_DATA_DIR": str(tmp_path / "data")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield {**os.environ, **env}
    reset_settings_cache()


@dataclass
class Tenant:
    user_id: UUID
    team_id: UUID
    email: str

    @property
    def identity(self) -> Identity:
        return Identity.user(self.user_id)


async def make_tenant(db: Database, slug: str, role: str = "owner") -> Tenant:
    async with db.session(Identity.system()) as s:
        user = await s.users.create(f"{slug}@example.com", display_name=slug, password="correct horse")
    async with db.session(Identity.user(user.id)) as s:
        team = await s.teams.create(slug, slug.title())
    return Tenant(user.id, team.id, user.email)


@pytest.fixture
async def two_teams(db: Database) -> tuple[Tenant, Tenant]:
    return await make_tenant(db, "alpha"), await make_tenant(db, "bravo")


@pytest.fixture
def tenant_factory(db: Database):
    async def make(slug: str) -> Tenant:
        return await make_tenant(db, slug)

    return make


@pytest.fixture(scope="session")
def local_sandbox(tmp_path_factory):
    """A real local sandbox server for the session: (server, settings pointing at it)."""
    from coherex.testing.sandbox import start_local_sandbox

    server, settings = start_local_sandbox(tmp_path_factory.mktemp("sandbox-data"))
    yield server, settings
    server.stop()


@pytest.fixture
async def keys(db, two_teams) -> tuple[str, str]:
    """API keys of alpha's and bravo's owners."""
    out = []
    for tenant in two_teams:
        async with db.session(tenant.identity) as s:
            out.append((await s.api_keys.create(tenant.team_id, "tests"))[1])
    return out[0], out[1]
