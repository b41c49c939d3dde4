"""`coherex up` — the one command that runs the whole platform — started from some other directory
on a fresh data dir: the database, sandbox server, API + chat, dashboard and worker all come up, an
agent created over the API runs Python in the sandbox through the worker, a chat login also signs
in to the dashboard (in Chromium), and Ctrl-C stops it all.
The LLM is the fake OpenAI server (the offline model would take minutes here)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from coherex.store.embedded import free_port
from coherex.testing.browser import CHROMIUM, launch
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: smoke, description: Adds numbers in the sandbox}
    spec:
      instructions: Add the numbers with Python.
      tools:
        - use: python
    """)


def _wait_for(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            r = httpx.get(url, timeout=2)
            if r.status_code == 200:
                return r
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{url} never answered\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


async def _chat_login_signs_in_to_the_dashboard(chat: str, dashboard: str, password: str) -> None:
    """One login for both: the chat's cookie is sent to the dashboard's port of the same host."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as p:
        browser = await launch(p)
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(dashboard)
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible(
            timeout=60_000
        )  # not signed in yet
        await page.goto(chat)
        await page.locator("#email").fill("admin@localhost")
        await page.locator("#password").fill(password)
        await page.locator("button[type=submit]").click()
        await expect(page.locator("#chat-input")).to_be_visible(timeout=60_000)
        await page.goto(dashboard)
        sidebar = page.get_by_test_id("stSidebar")
        await expect(sidebar.get_by_text("admin@localhost")).to_be_visible(timeout=60_000)
        await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=30_000)
        await expect(page.get_by_test_id("stMetricValue").first).to_have_text(
            "1", timeout=30_000
        )  # the run above
        # signing out of the dashboard is not undone by the chat's cookie
        await sidebar.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=30_000)
        await browser.close()


def test_up_runs_the_whole_platform_and_stops_it(tmp_path_factory):
    data, elsewhere = tmp_path_factory.mktemp("up-data"), tmp_path_factory.mktemp("up-cwd")
    web, dashboard = free_port(), free_port()
    with FakeOpenAI() as llm:
        env = {
            **os.environ,
            "COHEREX_DATA_DIR": str(data),
            "COHEREX_DB_PORT": str(free_port()),
            "COHEREX_SANDBOX_PORT": str(free_port()),
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": llm.api_key,
        }
        for name in ("DATABASE_URL", "CHAINLIT_AUTH_SECRET", "COHEREX_SANDBOX", "E2B_API_KEY"):
            env.pop(name, None)
        log = tmp_path_factory.mktemp("up-log") / "up.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "coherex",
                    "up",
                    "--port",
                    str(web),
                    "--dashboard-port",
                    str(dashboard),
                ],
                cwd=elsewhere,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            health = _wait_for(f"http://127.0.0.1:{web}/api/health", proc, log).json()
            assert health["database"] == "ok"
            _wait_for(f"http://127.0.0.1:{web}/chat/logo", proc, log)
            _wait_for(f"http://127.0.0.1:{dashboard}/_stcore/health", proc, log)
            assert (data / "admin-password").exists()
            key = subprocess.run(
                [sys.executable, "-m", "coherex", "keys", "create", "smoke", "--json"],
                cwd=elsewhere,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert key.returncode == 0, key.stderr
            import json

            headers = {"Authorization": f"Bearer {json.loads(key.stdout)['key']}"}
            llm.script([ToolCall("python", {"code": "print(sum([19, 23]))"}), Text("The sum is 42.")])
            with httpx.Client(base_url=f"http://127.0.0.1:{web}", headers=headers, timeout=30) as api:
                agent = api.post("/api/agents", json={"spec": SPEC})
                assert agent.status_code == 201, agent.text
                run = api.post(f"/api/agents/{agent.json()['agent']['id']}/execute")
                assert run.status_code == 202, run.text
                run_id = run.json()["id"]
                deadline = time.monotonic() + 120
                while (status := api.get(f"/api/executions/{run_id}").json()["status"]) in (
                    "pending",
                    "running",
                ):
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.5)
                assert status == "completed", log.read_text()[-3000:]
                events = api.get(f"/api/executions/{run_id}/events").json()
            assert any(e["type"] == "stdout" and e["payload"]["text"].strip() == "42" for e in events), events
            if Path(CHROMIUM).exists():
                asyncio.run(
                    _chat_login_signs_in_to_the_dashboard(
                        f"http://127.0.0.1:{web}/chat",
                        f"http://127.0.0.1:{dashboard}",
                        (data / "admin-password").read_text().strip(),
                    )
                )
            # nothing of the platform's own files lands in the directory it was started from
            assert sorted(p.name for p in elsewhere.iterdir()) == []
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    assert code in (0, 130), log.read_text()[-3000:]
    assert "Embedded database stopped" in log.read_text()
    # every process it started is gone: the ports are free again
    for port in (web, dashboard, int(env["COHEREX_SANDBOX_PORT"]), int(env["COHEREX_DB_PORT"])):
        with __import__("socket").socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, port
