"""Queue dispatch throughput and HTTP API latency, on loopback, with an instantly answering fake LLM.

- dispatch: N executions queued, then one worker process (concurrency 10) drains them;
  executions/s = N / (time from the first start to the last finish).
- API: p50/p95 of `POST /api/agents/{id}/execute` and `GET /api/agents/{id}` with 8 concurrent
  clients, a bounded number of requests each (the API server runs in this process).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record  # noqa: E402

from coherex.runtime import Runtime  # noqa: E402
from coherex.services.agents import apply_spec  # noqa: E402
from coherex.settings import reset_settings_cache  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.testing.api import ApiServer  # noqa: E402
from coherex.testing.fake_openai import FakeOpenAI, Text  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402

QUEUED = 500
API_CLIENTS, API_REQUESTS = 8, 40
SPEC = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: bench}\nspec:\n  instructions: Answer.\n"


async def main() -> None:
    server = TestPostgres.start()
    urls = server.create_database()
    try:
        with FakeOpenAI() as fake:
            fake.always(Text("ok"))
            env = {
                **os.environ,
                "DATABASE_URL": urls.app,
                "OPENAI_BASE_URL": fake.base_url,
                "OPENAI_API_KEY": fake.api_key,
                "COHEREX_DATA_DIR": "/tmp/coherex-bench-data",
                "COHEREX_API_RATE": "100000",
                "COHEREX_API_BURST": "100000",
            }
            os.environ.update(env)
            reset_settings_cache()
            async with Database(urls.app, max_size=4) as db:
                async with db.session(Identity.system()) as s:
                    user = await s.users.create("bench@example.com")
                async with db.session(Identity.user(user.id)) as s:
                    team = await s.teams.create("bench", "Bench")
                    agent = (await apply_spec(s, team.id, SPEC)).agent
                    _, key = await s.api_keys.create(team.id, "bench")
                runtime = Runtime(db)
                for _ in range(QUEUED):
                    await runtime.create(Identity.user(user.id), team.id, agent, trigger="api", queue=True)
                worker = subprocess.run(
                    [sys.executable, "-m", "coherex", "worker", "--drain", "-c", "10"],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                assert worker.returncode == 0, worker.stdout[-2000:]
                async with db.session(Identity.system()) as s:
                    rows = await s.executions.list(team_id=team.id, limit=QUEUED)
                assert all(r.status == "completed" for r in rows)
                span = (max(r.finished_at for r in rows) - min(r.started_at for r in rows)).total_seconds()

                with ApiServer() as api:

                    async def hammer(method: str, path: str) -> list[float]:
                        out: list[float] = []

                        async def client() -> None:
                            async with api.client(key) as c:
                                for _ in range(API_REQUESTS):
                                    t = time.perf_counter()
                                    r = await c.request(method, path, json={} if method == "POST" else None)
                                    out.append((time.perf_counter() - t) * 1000)
                                    assert r.status_code < 300, r.text

                        await asyncio.gather(*(client() for _ in range(API_CLIENTS)))
                        return out

                    get_ms = await hammer("GET", f"/api/agents/{agent.id}")
                    execute_ms = await hammer("POST", f"/api/agents/{agent.id}/execute")
    finally:
        server.drop_database(urls)
        server.stop()
    record(
        "queue_api",
        {
            "dispatch": {
                "executions": QUEUED,
                "worker_concurrency": 10,
                "seconds": round(span, 2),
                "executions_per_s": round(QUEUED / span, 1),
            },
            "api_get_agent": {**percentiles(get_ms), "clients": API_CLIENTS},
            "api_execute": {**percentiles(execute_ms), "clients": API_CLIENTS},
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
