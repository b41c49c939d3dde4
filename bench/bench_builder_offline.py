"""The offline builder (no capable model): does it pick the right template or tools, and how long
does a builder turn take? Every case of bench/builder_cases.jsonl runs through the real
`BuilderSession` on the offline model (the guided flow of coherex/builder/offline.py) against a
real Postgres, exactly as `coherex eval builder` runs them.

Turn time = `TurnResult.duration_ms` of every turn (request, answers, edits), with the embedding
model already loaded (the first turn of a process also loads MiniLM: measured apart, as `cold_turn_ms`).
Run: python bench/bench_builder_offline.py; writes bench/results/builder_offline.json.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import percentiles, record  # noqa: E402
from coherex.builder.evaluate import load_cases, run_case, totals  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402

HERE = Path(__file__).resolve().parent
#: the eval cases, and two held-out sets written after the flow was tuned on the first
#: (heldout2 was run once and not tuned on)
SETS = {
    "builder_cases": HERE / "builder_cases.jsonl",
    "heldout": HERE / "builder_cases_heldout.jsonl",
    "heldout2": HERE / "builder_cases_heldout2.jsonl",
}


async def main() -> None:
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        os.environ.pop(key, None)  # the offline model
    from coherex.builder.offline import warm_up
    from coherex.llm import get_llm_client
    from coherex.settings import get_settings

    assert get_settings().llm_offline
    llm = get_llm_client()
    started = time.perf_counter()
    await asyncio.to_thread(warm_up)
    cold_ms = (time.perf_counter() - started) * 1000
    server = TestPostgres.start()
    urls = server.create_database()
    try:
        async with Database(urls.app, min_size=2, max_size=4) as db:
            async with db.session(Identity.system()) as s:
                user = await s.users.create("bench@example.com", password="correct horse")
            by_set = {
                name: [await run_case(db, user.id, case, llm) for case in load_cases(path)]
                for name, path in SETS.items()
            }
    finally:
        server.drop_database(urls)
        server.stop()
    every = [r for results in by_set.values() for r in results]
    record(
        "builder_offline",
        {
            "sets": {name: totals(results) for name, results in by_set.items()},
            "all": totals(every),
            "turn": percentiles([ms for r in every for ms in r.turn_ms]),
            "cold_turn_ms": {"embedder_and_library_vectors": round(cold_ms, 1)},
            "load_average_1min_at_end": os.getloadavg()[0],
            "misses": [{"id": r.id, "failed": r.failed, "error": r.error} for r in every if not r.hit],
            "property_failures": {r.id: r.failed for r in every if r.failed and r.hit},
            "note": "offline model (no OPENAI_*), real Postgres, 2 shared cores; hit = every expected tool "
            "used and the expected template (if any) chosen",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
