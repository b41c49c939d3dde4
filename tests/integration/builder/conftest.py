from __future__ import annotations

import pytest

from coherex.builder import BuilderSession, BuilderUI
from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy


@pytest.fixture
def llm(fake_llm):
    return OpenAIClient(
        api_key=fake_llm.api_key,
        base_url=fake_llm.base_url,
        retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02),
    )


@pytest.fixture
def builder(db, two_teams, llm):
    alpha, _ = two_teams
    return BuilderSession(db, alpha.identity, alpha.team_id, llm=llm, team_name="Alpha")


class RecordingUI(BuilderUI):
    """What a person would see: streamed text, builder steps, run steps."""

    def __init__(self):
        self.tokens: list[str] = []
        self.tools: list[tuple[str, str]] = []
        self.run_events: list = []
        self.started = None
        self.finished = None

    async def token(self, text):
        self.tokens.append(text)

    async def tool_step(self, name, arguments, result):
        self.tools.append((name, result))

    async def run_started(self, execution, agent):
        self.started = execution

    async def run_event(self, event):
        self.run_events.append(event)

    async def run_finished(self, execution):
        self.finished = execution


@pytest.fixture
def ui():
    return RecordingUI()
