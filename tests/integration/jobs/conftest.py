from __future__ import annotations

import subprocess
import textwrap

import pytest

from coherex.services.agents import apply_spec

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: queued}
    spec:
      instructions: Answer briefly.
      limits: {maxSteps: 3}
    """)


@pytest.fixture
def worker_env(cli_env, worker_llm_env):
    return {**cli_env, **worker_llm_env}


@pytest.fixture
def start_worker(worker_env, worker_processes):
    """start(*args) -> a `coherex worker` against the test database and fake LLM (output piped)."""
    return lambda *args: worker_processes(worker_env, *args, output=subprocess.PIPE)


@pytest.fixture
async def queued_agent(db, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        return alpha, (await apply_spec(s, alpha.team_id, SPEC)).agent
