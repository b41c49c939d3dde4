"""The database restarts while runs are being started and while the API serves: every run ends,
and the API answers normally as soon as the database is back (no burst of errors from dead pooled
connections). These tests restart a Postgres server of their own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.store.db import Database, Identity
from coherex.testing.fake_openai import FakeOpenAI, Slow, Text
from coherex.testing.postgres import TestPostgres

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: restartable}
    spec:
      instructions: Answer briefly.
      limits: {maxSteps: 3}
    """)


@pytest.fixture
def own_pg():
    server = TestPostgres.start()
    yield server
    server.stop()


@pytest.fixture
async def setup(own_pg, tmp_path, monkeypatch):
    urls = own_pg.create_database()
    env = {
        "DATABASE_URL": urls.app,
        "COHEREX_DATA_DIR": str(tmp_path / "data"),
        "COHEREX_HEARTBEAT_SECONDS": "1",
        "COHEREX_MAINTENANCE_SECONDS": "1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    db = Database(urls.app, max_size=4)
    await db.open()
    async with db.session(Identity.system()) as s:
        user = await s.users.create("restart@example.com")
    async with db.session(Identity.user(user.id)) as s:
        team = await s.teams.create("restart", "Restart")
        agent = (await apply_spec(s, team.id, SPEC)).agent
        _, key = await s.api_keys.create(team.id, "tests")
    yield db, Identity.user(user.id), team, agent, key, {**os.environ, **env}
    await db.close()
    reset_settings_cache()


async def _restart(pg: TestPostgres, down_seconds: float = 2.0) -> float:
    pg._embedded.stop()
    await asyncio.sleep(down_seconds)
    pg._embedded.start()
    return time.monotonic()


async def _statuses(db: Database) -> list[str]:
    while True:
        try:
            async with db.session(Identity.system()) as s:
                return [r.status for r in await s.executions.list(limit=100)]
        except Exception:
            await asyncio.sleep(0.2)


@pytest.mark.timeout(150)
async def test_runs_being_started_when_the_database_restarts_all_complete(own_pg, setup):
    db, who, team, agent, _, env = setup
    with FakeOpenAI() as llm:
        llm.always(Slow(0.3, Text("made it")))
        env = {**env, "OPENAI_BASE_URL": llm.base_url, "OPENAI_API_KEY": llm.api_key}
        runtime = Runtime(db)
        for _ in range(20):
            await runtime.create(who, team.id, agent, trigger="api", queue=True)
        worker = subprocess.Popen(
            [sys.executable, "-m", "coherex", "worker", "--concurrency", "10"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while "running" not in await _statuses(db):  # the worker is starting them now
                assert time.monotonic() < deadline and worker.poll() is None, "the worker started nothing"
                await asyncio.sleep(0.05)
            back = await _restart(own_pg)
            while True:
                statuses = await _statuses(db)
                if all(s == "completed" for s in statuses):
                    break
                assert time.monotonic() - back < 60, f"60 s after the database came back: {statuses}"
                assert worker.poll() is None, worker.communicate()[0][-3000:]
                await asyncio.sleep(0.3)
        finally:
            worker.terminate()
            worker.wait(15)
    async with db.session(Identity.system()) as s:
        rows = await s.executions.list(limit=100)
    assert len(rows) == 20 and {r.status for r in rows} == {"completed"}
    assert {r.output["text"] for r in rows} == {"made it"}


async def test_the_api_answers_normally_right_after_the_database_restarts(own_pg, setup):
    from coherex.testing.api import ApiServer

    _, _, _, agent, key, _ = setup
    with ApiServer() as api:
        async with api.client(key) as c:
            # several pooled connections are open, then idle while the database restarts
            first = await asyncio.gather(*(c.get(f"/api/agents/{agent.id}") for _ in range(8)))
            assert [r.status_code for r in first] == [200] * 8
            await _restart(own_pg, down_seconds=1.0)
            answers = [await c.get(f"/api/agents/{agent.id}") for _ in range(12)]
    assert [a.status_code for a in answers] == [200] * 12, [a.text for a in answers if a.status_code != 200]
