"""Fixtures: the fake Slack (FakeSaaS) and LLM, a team with a Slack source, an agent whose
`slack.post_message` needs approval, and real worker processes."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass

import pytest

from coherex.integrations.service import add_source
from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.store.db import Database, Identity
from coherex.testing.fake_openai import FakeOpenAI
from coherex.testing.fake_saas import FakeSaaS


def spec(approval: str = "always", limits: str = "", name: str = "poster", access: str = "write") -> str:
    text = textwrap.dedent(f"""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {{name: {name}}}
        spec:
          instructions: Post what you are asked to post.
          tools:
            - use: slack.post_message
              dataSource: team-slack
              access: {access}
        """)
    if approval:
        text += f"      approval: {approval}\n"
    if limits:
        text += f"  limits: {limits}\n"
    return text


@dataclass
class World:
    db: Database
    saas: FakeSaaS
    llm: FakeOpenAI
    team_id: object
    user_id: object
    ops: str  # the Slack channel id of #ops

    @property
    def owner(self) -> Identity:
        return Identity.user(self.user_id)

    def runtime(self, **kw) -> Runtime:
        client = OpenAIClient(
            api_key=self.llm.api_key,
            base_url=self.llm.base_url,
            retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.05),
        )
        return Runtime(self.db, llm=client, **kw)

    async def agent(self, text: str):
        async with self.db.session(self.owner) as s:
            return (await apply_spec(s, self.team_id, text)).agent

    def posted(self) -> list[str]:
        return [m["text"] for m in self.saas.slack.messages.get(self.ops, [])]

    async def execution(self, execution_id):
        async with self.db.session(Identity.system()) as s:
            return await s.executions.get(execution_id)

    async def pending(self, execution_id):
        async with self.db.session(Identity.system()) as s:
            return [a for a in await s.approvals.of_execution(execution_id) if a.status == "pending"]

    async def wait_for(self, execution_id, predicate, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            row = await self.execution(execution_id)
            if predicate(row) or time.monotonic() > deadline:
                return row
            await asyncio.sleep(0.2)

    async def events(self, execution_id):
        async with self.db.session(Identity.system()) as s:
            return await s.executions.events(execution_id)


@pytest.fixture
def saas():
    with FakeSaaS() as server:
        yield server


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def settings_env(saas, db_urls, tmp_path, monkeypatch):
    env = {
        **saas.env(),
        "COHEREX_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "COHEREX_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": db_urls.app,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield env
    reset_settings_cache()


@pytest.fixture
async def world(db, saas, fake_llm, settings_env, tenant_factory) -> World:
    tenant = await tenant_factory("acme")
    ops = saas.slack.add_channel("ops")
    await add_source(
        db,
        Identity.user(tenant.user_id),
        tenant.team_id,
        "slack",
        "team-slack",
        credentials={"bot_token": saas.slack_token},
    )
    return World(db, saas, fake_llm, tenant.team_id, tenant.user_id, ops)


@pytest.fixture
def start_worker(settings_env, fake_llm):
    """Real `coherex worker` processes against the test database, fake LLM and fake Slack."""
    env = {
        **os.environ,
        **settings_env,
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": fake_llm.api_key,
        "COHEREX_HEARTBEAT_SECONDS": "1",
        "COHEREX_MAINTENANCE_SECONDS": "1",
    }
    procs = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coherex", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
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
