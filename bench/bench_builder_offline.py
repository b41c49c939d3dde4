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

CASES = Path(__file__).resolve().parent / "builder_cases.jsonl"


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
            results = [await run_case(db, user.id, case, llm) for case in load_cases(CASES)]
    finally:
        server.drop_database(urls)
        server.stop()
    total = totals(results)
    turn_ms = [ms for r in results for ms in r.turn_ms]
    record("builder_offline", {
        "total": total,
        "turn": percentiles(turn_ms),
        "cold_turn_ms": {"embedder_and_library_vectors": round(cold_ms, 1)},
        "load_average_1min_at_end": os.getloadavg()[0],
        "misses": [{"id": r.id, "failed": r.failed, "error": r.error} for r in results if not r.hit],
        "property_failures": {r.id: r.failed for r in results if r.failed and r.hit},
        "note": "offline model (no OPENAI_*), real Postgres, 2 shared cores; hit = every expected tool used "
                "and the expected template (if any) chosen",
    })


if __name__ == "__main__":
    asyncio.run(main())
