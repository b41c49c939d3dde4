"""Embedded Postgres+pgvector: cold start (initdb + start) and warm start (start of an existing
data dir), as `coherex db start` does them. Target from DESIGN.md notes: cold ~0.65 s, restart ~0.17 s."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import percentiles, record  # noqa: E402

from coherex.store.embedded import EmbeddedPostgres, free_port  # noqa: E402

RUNS = 5


def main() -> None:
    cold, warm, migrate_ms = [], [], []
    from coherex.store.embedded import APP_USER
    from coherex.store.migrate import migrate

    for _ in range(RUNS):
        tmp = Path(tempfile.mkdtemp(prefix="coherex-bench-pg-", dir="/tmp"))
        pg = EmbeddedPostgres(tmp, free_port())
        try:
            t = time.perf_counter()
            pg.start()
            cold.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            migrate(pg.url(admin=True), app_user=APP_USER)
            migrate_ms.append((time.perf_counter() - t) * 1000)
            for _ in range(3):
                pg.stop()
                t = time.perf_counter()
                pg.start()
                warm.append((time.perf_counter() - t) * 1000)
        finally:
            pg.stop()
            shutil.rmtree(tmp, ignore_errors=True)
    record(
        "db_start",
        {
            "cold_start_initdb_and_start": percentiles(cold),
            "warm_start_existing_data_dir": percentiles(warm),
            "migrate_fresh_database": percentiles(migrate_ms),
            "note": "cold includes copying the Postgres binaries once per data dir when run as root",
        },
    )


if __name__ == "__main__":
    main()
