"""Shared fixtures: a real Postgres (embedded, or TEST_DATABASE_URL), a fresh database per test,
and two teams with users for isolation tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from uuid import UUID

import pytest

from coherex.settings import reset_settings_cache
from coherex.store.db import Database, DatabaseUrls, Identity
from coherex.testing.fake_openai import FakeOpenAI
from coherex.testing.fake_saas import FakeSaaS
from coherex.testing.postgres import TestPostgres
from coherex.testing.scripted_llm import ScriptedLLM

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
def fake_openai_server():
    """One fake OpenAI server (real HTTP) for the session; tests take it through `fake_llm`."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake_llm(fake_openai_server: FakeOpenAI) -> FakeOpenAI:
    """The fake OpenAI server with its script and records cleared for this test: point a client, a
    subprocess or the API at `fake_llm.base_url` / `fake_llm.api_key`, then `fake_llm.script([...])`."""
    fake_openai_server.reset()
    return fake_openai_server


@pytest.fixture
def worker_llm_env(fake_llm: FakeOpenAI) -> dict[str, str]:
    """What a `coherex worker` subprocess needs beside the database: the fake LLM, and heartbeats
    and maintenance every second (so dead runs are found within seconds)."""
    return {
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": fake_llm.api_key,
        "COHEREX_HEARTBEAT_SECONDS": "1",
        "COHEREX_MAINTENANCE_SECONDS": "1",
    }


@pytest.fixture
def worker_processes():
    """start(env, *args, output=DEVNULL) -> a real `coherex worker [args]` process (text output);
    every one still running is stopped at the end of the test."""
    procs: list[subprocess.Popen] = []

    def start(env: dict[str, str], *args: str, output: int = subprocess.DEVNULL) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coherex", "worker", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def saas():
    """The fake SaaS server (Slack, Gmail, GitHub, OAuth providers): real HTTP on a free port."""
    with FakeSaaS() as server:
        yield server


@pytest.fixture
def scripted_llm() -> ScriptedLLM:
    """The in-process LLMClient double taking the same script items (coherex/testing/scripted_llm.py)."""
    return ScriptedLLM()


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
