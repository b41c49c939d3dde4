"""A test run of the csv-analysis template on the offline model (no key set), end to end: the
real Runtime, a real Postgres, the real local sandbox running the platform's analysis script on an
uploaded CSV, then the bundled 135M model phrasing the answer. Issue 18's target: under 30 s on 2
idle cores, and the answer names the file's real figures.

`model_load_s` is loading the offline model in this process (the first test run after `make run`
pays it once: `first_run_with_model_load_s`); `warm_runs_s` are the runs after the first.
Run on a quiet machine: python bench/bench_offline_run.py [--runs 5]; writes
bench/results/offline_run.json (load average recorded at start and end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CSV = b"region,amount\nnorth,1200\nsouth,800\nnorth,300\neast,450\nsouth,150\n"
QUESTION = "Which region has the highest total amount?"


async def main(runs: int) -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(key, None)  # the offline model
    from coherex.llm import get_llm_client
    from coherex.runtime import Runtime
    from coherex.services.agents import apply_spec
    from coherex.store.db import Database, Identity
    from coherex.testing.postgres import TestPostgres
    from coherex.testing.sandbox import start_local_sandbox

    load_start = os.getloadavg()[0]
    sandbox, settings = start_local_sandbox(Path(tempfile.mkdtemp(prefix="bench-offline-sbx-")))
    settings = settings.model_copy(update={"openai_api_key": None, "openai_base_url": None})
    assert settings.llm_offline
    server = TestPostgres.start()
    urls = server.create_database()
    samples: list[dict] = []
    load_s = 0.0
    try:
        async with Database(urls.app, min_size=1, max_size=4) as db:
            async with db.session(Identity.system()) as s:
                user = await s.users.create("bench@example.com")
            identity = Identity.user(user.id)
            async with db.session(identity) as s:
                team = await s.teams.create("bench", "Bench")
                agent = (
                    await apply_spec(s, team.id, (ROOT / "templates" / "csv-analysis.yaml").read_text())
                ).agent
            t_load = time.perf_counter()
            llm = get_llm_client(settings)  # loads the offline model (once per process)
            load_s = time.perf_counter() - t_load
            runtime = Runtime(db, llm=llm, settings=settings)
            for _ in range(runs + 1):
                t0 = time.perf_counter()
                ex = await runtime.create(
                    identity, team.id, agent, trigger="cli", inputs={"question": QUESTION}
                )
                final = await runtime.run(ex.id, files={"data.csv": CSV})
                seconds = time.perf_counter() - t0
                text = (final.output or {}).get("text", "")
                samples.append(
                    {
                        "seconds": round(seconds, 2),
                        "status": final.status,
                        "attempts": final.attempts,
                        # the question's answer, from the file's figures: north, 1500 (1200 + 300)
                        "answers_with_file_figures": "north" in text.lower()
                        and "1500" in text.replace(",", ""),
                        "answer": text[:300],
                    }
                )
                print(samples[-1], flush=True)
    finally:
        server.drop_database(urls)
        server.stop()
        sandbox.stop()
    warm = [s["seconds"] for s in samples[1:]]
    record(
        "offline_run",
        {
            "template": "csv-analysis",
            "target": "test run < 30 s on 2 idle cores, answer names the file's figures",
            "model_load_s": round(load_s, 2),
            "first_run_s": samples[0]["seconds"],
            "first_run_with_model_load_s": round(samples[0]["seconds"] + load_s, 2),
            "warm_runs_s": warm,
            "warm_p50_s": round(statistics.median(warm), 2) if warm else None,
            "max_s": max(s["seconds"] for s in samples),
            "all_completed": all(s["status"] == "completed" for s in samples),
            "answers_with_file_figures": sum(s["answers_with_file_figures"] for s in samples),
            "runs": len(samples),
            "load_average_1m_start": round(load_start, 2),
            "load_average_1m_end": round(os.getloadavg()[0], 2),
            "samples": samples,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))
