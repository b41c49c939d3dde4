from __future__ import annotations

import subprocess
import sys

import pytest

from coherex.testing.api import ApiServer
from coherex.testing.fake_openai import FakeOpenAI


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def served_env(cli_env, fake_llm, monkeypatch):
    """The environment of the web app (in this process) and of the worker (a subprocess)."""
    from coherex.settings import reset_settings_cache

    extra = {"OPENAI_BASE_URL": fake_llm.base_url, "OPENAI_API_KEY": fake_llm.api_key,
             "COHEREX_HEARTBEAT_SECONDS": "1", "COHEREX_MAINTENANCE_SECONDS": "1",
             # a small bucket, so the rate-limit test does not depend on how fast this machine is
             "COHEREX_API_RATE": "1", "COHEREX_API_BURST": "30"}
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
    reset_settings_cache()
    yield {**cli_env, **extra}
    reset_settings_cache()


@pytest.fixture
def api(served_env):
    with ApiServer() as server:
        yield server


@pytest.fixture
def worker(served_env):
    """A real worker process running the queued executions."""
    proc = subprocess.Popen([sys.executable, "-m", "coherex", "worker"], env=served_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()

