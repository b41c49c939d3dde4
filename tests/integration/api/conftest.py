from __future__ import annotations

import pytest

from coherex.store.db import Identity
from coherex.testing.api import ApiServer


@pytest.fixture
def api_env(cli_env, fake_llm, monkeypatch):
    from coherex.settings import reset_settings_cache

    monkeypatch.setenv("OPENAI_BASE_URL", fake_llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", fake_llm.api_key)
    # a small bucket, so the rate-limit test does not depend on how fast this machine is
    monkeypatch.setenv("COHEREX_API_RATE", "1")
    monkeypatch.setenv("COHEREX_API_BURST", "30")
    reset_settings_cache()
    yield
    reset_settings_cache()


@pytest.fixture
def api(api_env):
    with ApiServer() as server:
        yield server


@pytest.fixture
def drain():
    """Run queued executions to the end in this process (a real worker, stopping when the queue is empty)."""
    from coherex.jobs import run_worker
    from coherex.settings import get_settings

    async def go() -> None:
        await run_worker(get_settings(), concurrency=4, wait=False, install_signal_handlers=False)

    return go


@pytest.fixture
def system():
    return Identity.system()
