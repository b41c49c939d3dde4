import pytest

from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.testing.fake_openai import FakeOpenAI


@pytest.fixture(scope="module")
def fake_server():
    with FakeOpenAI(api_key="sk-test") as server:
        yield server


@pytest.fixture
def server(fake_server: FakeOpenAI):
    fake_server.reset()
    return fake_server


@pytest.fixture
def client(server: FakeOpenAI):
    # short backoff so retry tests stay fast; the policy itself is the production one
    return OpenAIClient(
        api_key=server.api_key,
        base_url=server.base_url,
        timeout=5,
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
