"""The model a draft names is the model its runs use: the offline model when no OpenAI key or
server is set (the spec's `gpt-4o-mini` would be a lie), the spec's model otherwise."""

from __future__ import annotations

import pytest

from coherex.builder import summarize
from coherex.llm.local_model import MODEL_NAME
from coherex.settings import reset_settings_cache
from coherex.spec import load_spec

SPEC = {
    "apiVersion": "coherex/v1",
    "kind": "Agent",
    "metadata": {"name": "fact"},
    "spec": {"model": {"name": "gpt-4o-mini"}, "instructions": "Tell a fact."},
}


@pytest.fixture
def env(monkeypatch):
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()
    yield monkeypatch
    reset_settings_cache()


def test_without_a_key_the_draft_names_the_offline_model(env):
    text = summarize(load_spec(SPEC))
    assert f"on {MODEL_NAME} (offline" in text and "the spec asks for gpt-4o-mini" in text


def test_with_a_key_the_draft_names_the_specs_model(env):
    env.setenv("OPENAI_API_KEY", "sk-test")
    reset_settings_cache()
    text = summarize(load_spec(SPEC))
    assert text.endswith("on gpt-4o-mini") and "offline" not in text
