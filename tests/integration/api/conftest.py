from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from coherex.store.db import Identity
from coherex.testing.fake_openai import FakeOpenAI


class ApiServer:
    """The real API (FastAPI + uvicorn) on a free port, in a background thread."""

    def __init__(self):
        from coherex.web import create_app

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(chat=False), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self, key: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=30)


@pytest.fixture
def fake_llm():
    with FakeOpenAI() as server:
        yield server


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
async def keys(db, two_teams) -> tuple[str, str]:
    """API keys of alpha's and bravo's owners."""
    out = []
    for tenant in two_teams:
        async with db.session(tenant.identity) as s:
            out.append((await s.api_keys.create(tenant.team_id, "tests"))[1])
    return out[0], out[1]


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
