"""One seeded database per test module (seeding takes seconds): team alpha with demo activity,
team bravo with one agent and a few runs of its own, and PostgREST serving that database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from coherex.store.db import Database, DatabaseUrls, Identity
from coherex.testing.demo import seed
from coherex.testing.postgrest import PostgrestServer

SEED_EXECUTIONS = 1500


PASSWORD = "correct horse"


@dataclass(frozen=True)
class Tenant:
    user_id: UUID
    team_id: UUID
    email: str

    @property
    def identity(self) -> Identity:
        return Identity.user(self.user_id)


async def make_tenant(db: Database, slug: str) -> Tenant:
    async with db.session(Identity.system()) as s:
        user = await s.users.create(f"{slug}@example.com", display_name=slug, password=PASSWORD)
    async with db.session(Identity.user(user.id)) as s:
        team = await s.teams.create(slug, slug.title())
    return Tenant(user.id, team.id, user.email)


@dataclass
class Seeded:
    urls: DatabaseUrls
    alpha: Tenant
    bravo: Tenant

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Independent answers: plain SQL as the database owner (no RLS), filtered by hand."""
        with psycopg.connect(self.urls.admin) as conn:
            return conn.execute(query, params).fetchall()


async def _seed(urls: DatabaseUrls) -> Seeded:
    db = await Database(urls.app, min_size=1, max_size=2).open()
    try:
        alpha, bravo = await make_tenant(db, "alpha"), await make_tenant(db, "bravo")
        await seed(db, alpha.team_id, alpha.user_id, executions=SEED_EXECUTIONS, batch=1000)
        async with db.session(bravo.identity) as s:
            spec = {
                "apiVersion": "coherex/v1",
                "kind": "Agent",
                "metadata": {"name": "bravo-bot"},
                "spec": {"model": {"name": "gpt-4o-mini"}, "instructions": "Say hello."},
            }
            saved = await s.agents.save_spec(bravo.team_id, spec, "metadata: {name: bravo-bot}\n")
            for _ in range(3):
                run = await s.executions.create(bravo.team_id, saved.agent.id, 1)
                await s.executions.finish(run.id, "completed", tokens_in=10, tokens_out=5, cost_usd=0.01)
    finally:
        await db.close()
    return Seeded(urls, alpha, bravo)


@pytest.fixture(scope="module")
def seeded(pg_server) -> Seeded:
    urls = pg_server.create_database()
    yield asyncio.run(_seed(urls))
    pg_server.drop_database(urls)


@pytest.fixture(scope="module")
def postgrest(seeded: Seeded) -> PostgrestServer:
    server = PostgrestServer.start(seeded.urls.app)
    yield server
    server.stop()


def default_range() -> tuple[datetime, datetime]:
    """The dashboard's default period: the last 30 UTC days, today included."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=29), today + timedelta(days=1)
