from __future__ import annotations

import textwrap

import pytest

from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.testing.fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
def fake_llm():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def llm(fake_llm):
    fake_llm.reset()
    client = OpenAIClient(
        api_key=fake_llm.api_key,
        base_url=fake_llm.base_url,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05),
    )
    yield client


@pytest.fixture
def runtime(db, llm):
    return Runtime(db, llm=llm)


@pytest.fixture
def spec_yaml():
    return make_spec_yaml


def make_spec_yaml(name: str = "demo", *, tools: str = "", limits: str = "", inputs: str = "") -> str:
    body = textwrap.dedent(f"""\
        apiVersion: coherex/v1
        kind: Agent
        metadata:
          name: {name}
          description: A test agent
        spec:
          model: {{name: gpt-4o-mini}}
          instructions: Do the task for {{{{city}}}}.
        """)
    body += "  inputs:\n    city: {type: string, default: Paris}\n" + inputs
    if tools:
        body += "  tools:\n" + textwrap.indent(textwrap.dedent(tools), "    ")
    if limits:
        body += f"  limits: {limits}\n"
    return body


@pytest.fixture
def make_agent(db, two_teams):
    alpha, _ = two_teams

    async def make(text: str):
        async with db.session(alpha.identity) as s:
            return (await apply_spec(s, alpha.team_id, text)).agent

    make.tenant = alpha
    return make
