"""Dashboard speed with 100k executions and ~1M events (`coherex demo seed` data):
- the SQL time of each aggregate (as the signed-in user, RLS applied), SQL reader and PostgREST reader;
- time to first full render of the overview (Streamlit AppTest, in-process: every query and chart built).
Target: overview < 2 s. Run: python bench/bench_dashboard.py [--executions 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psycopg  # noqa: E402
from _common import percentiles, record  # noqa: E402

from coherex.dashboard.auth import sign_jwt  # noqa: E402
from coherex.dashboard.data import Filters, SqlReader, SupabaseReader, SyncDatabase  # noqa: E402
from coherex.settings import reset_settings_cache  # noqa: E402
from coherex.store.db import Database, Identity  # noqa: E402
from coherex.testing.demo import seed  # noqa: E402
from coherex.testing.postgres import TestPostgres  # noqa: E402
from coherex.testing.postgrest import PostgrestServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


async def prepare(urls, n: int):
    db = await Database(urls.app, min_size=1, max_size=2).open()
    async with db.session(Identity.system()) as s:
        user = await s.users.create("bench@example.com", password="correct horse")
    async with db.session(Identity.user(user.id)) as s:
        team = await s.teams.create("bench", "Bench")
    started = time.perf_counter()
    await seed(db, team.id, user.id, executions=n, days=29)
    seconds = time.perf_counter() - started
    await db.close()
    return user, team, seconds


def timed(fn, repeat: int = 5) -> dict:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=100_000)
    args = parser.parse_args()
    server = TestPostgres.start()
    urls = server.create_database()
    try:
        user, team, seed_s = asyncio.run(prepare(urls, args.executions))
        with psycopg.connect(urls.admin) as conn:
            events = conn.execute("select count(*) from execution_events").fetchone()[0]
        with psycopg.connect(urls.admin, autocommit=True) as conn:
            conn.execute("vacuum analyze")
        now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        f = Filters(team.id, now - timedelta(days=30), now)
        database = SyncDatabase(urls.app)
        sql = SqlReader(database, Identity.user(user.id))
        rest_server = PostgrestServer.start(urls.app)
        rest = SupabaseReader(
            rest_server.url, rest_server.anon_key, sign_jwt(rest_server.jwt_secret, user_id=user.id)
        )
        aggregates = {
            "summary": lambda r: r.summary(f),
            "summaries_with_previous": lambda r: r.summaries(f),
            "timeseries_day": lambda r: r.timeseries(f),
            "cost_by_agent": lambda r: r.cost_by(f, "agent"),
            "cost_by_model": lambda r: r.cost_by(f, "model"),
            "cost_by_member": lambda r: r.cost_by(f, "member"),
            "top_failing": lambda r: r.top_failing(f),
            "executions_page_500": lambda r: r.executions(f, limit=500),
            "agents": lambda r: r.agents(team.id),
        }
        results: dict = {
            "executions": args.executions,
            "events": events,
            "seed_seconds": round(seed_s, 2),
            "sql_reader": {},
            "postgrest_reader": {},
        }
        for name, fn in aggregates.items():
            results["sql_reader"][name] = timed(lambda: fn(sql))
            results["postgrest_reader"][name] = timed(lambda: fn(rest))

        from streamlit.testing.v1 import AppTest

        os.environ["DATABASE_URL"] = urls.app
        reset_settings_cache()
        renders = []
        for _ in range(3):  # each a fresh session: sign in, then the first render of the overview
            at = AppTest.from_file(str(ROOT / "dashboard_app.py"), default_timeout=120).run()
            at.text_input(key="email_input").input("bench@example.com")
            at.text_input(key="password_input").input("correct horse")
            t = time.perf_counter()
            at.button(key="sign_in").click().run()
            renders.append((time.perf_counter() - t) * 1000)
            assert not at.exception and at.metric[0].value == f"{args.executions:,}", (
                at.exception,
                at.metric,
            )
        results["overview_first_render"] = {
            **percentiles(renders),
            "target_ms": 2000,
            "note": "AppTest in-process; includes sign-in (scrypt) and all queries",
        }
        record("dashboard", results)
        rest_server.stop()
        database.close()
    finally:
        server.drop_database(urls)
        server.stop()


if __name__ == "__main__":
    main()
