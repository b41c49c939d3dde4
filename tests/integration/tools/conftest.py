"""The runtime's fixtures (fake LLM, runtime, agents of a team), and settings for data sources."""

from __future__ import annotations

import base64
import os

import pytest

from coherex.settings import reset_settings_cache
from tests.integration.runtime.conftest import llm, make_agent, runtime  # noqa: F401
from tests.integration.tools.notes_provider import FakeNotes


@pytest.fixture
def notes_server():
    with FakeNotes() as server:
        yield server


@pytest.fixture
def sources_env(notes_server, monkeypatch):
    """A vault key, and the notes server allowed through the egress guard (as an operator would)."""
    monkeypatch.setenv("COHEREX_SECRET_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("COHEREX_EGRESS_ALLOW", f"127.0.0.1:{notes_server.port}")
    reset_settings_cache()
    yield
    reset_settings_cache()
