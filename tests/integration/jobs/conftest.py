from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from coherex.services.agents import apply_spec
from coherex.testing.fake_openai import FakeOpenAI

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: queued}
    spec:
      instructions: Answer briefly.
      limits: {maxSteps: 3}
    """)


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def worker_env(cli_env, fake_llm):
    return {
        **cli_env,
        "OPENAI_BASE_URL": fake_llm.base_url,
        "OPENAI_API_KEY": fake_llm.api_key,
        "COHEREX_HEARTBEAT_SECONDS": "1",
        "COHEREX_MAINTENANCE_SECONDS": "1",
    }


@pytest.fixture
def start_worker(worker_env):
    procs = []

    def start(*args: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coherex", "worker", *args],
            env=worker_env,
            stdout=subprocess.PIPE,
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


@pytest.fixture
async def queued_agent(db, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        return alpha, (await apply_spec(s, alpha.team_id, SPEC)).agent
