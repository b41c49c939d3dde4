"""Platform overhead per execution: everything but the LLM's own latency and user code.

A fake OpenAI server answers instantly; each run is `Runtime.create` + `Runtime.run` of an agent
that makes one LLM call and answers (events, status changes, bookkeeping: all real, in a real
Postgres). Overhead = wall time − time inside the LLM calls (as the events record it).
Target (issue 5): p50 < 50 ms over ≥ 200 runs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record  # noqa: E402

from coherex.llm.openai_client import OpenAIClient  # noqa: E402
from coherex.runtime import Runtime  # noqa: E402
from coherex.services.agents import apply_spec  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.testing.fake_openai import FakeOpenAI, Text  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402

RUNS = 200
SPEC = """apiVersion: coherex/v1
kind: Agent
metadata: {name: bench}
spec:
  instructions: Answer.
"""


async def main() -> None:
    server = TestPostgres.start()
    urls = server.create_database()
    try:
        with FakeOpenAI() as fake:
            fake.always(Text("ok"))
            async with Database(urls.app, max_size=4) as db:
                async with db.session(Identity.system()) as s:
                    user = await s.users.create("bench@example.com")
                async with db.session(Identity.user(user.id)) as s:
                    team = await s.teams.create("bench", "Bench")
                    agent = (await apply_spec(s, team.id, SPEC)).agent
                llm = OpenAIClient(api_key=fake.api_key, base_url=fake.base_url)
                runtime = Runtime(db, llm=llm)
                identity = Identity.user(user.id)
                wall, overhead = [], []
                for i in range(RUNS + 10):
                    t = time.perf_counter()
                    ex = await runtime.create(identity, team.id, agent)
                    final = await runtime.run(ex.id)
                    total = (time.perf_counter() - t) * 1000
                    async with db.session(Identity.system()) as s:
                        llm_ms = sum(
                            e.duration_ms or 0
                            for e in await s.executions.events(ex.id)
                            if e.type == "llm_call"
                        )
                    assert final.status == "completed"
                    if i >= 10:  # warm-up: first connections, imports
                        wall.append(total)
                        overhead.append(total - llm_ms)
    finally:
        server.drop_database(urls)
        server.stop()
    record(
        "runtime_overhead",
        {
            "runs": RUNS,
            "overhead_per_execution": percentiles(overhead),
            "wall_per_execution_including_fake_llm_roundtrip": percentiles(wall),
            "target": "overhead p50 < 50 ms",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
