"""`execution_model_usage`, the rollup behind cost by model, is kept by the database: it always
equals the LLM-call events it sums (inserted one by one, in bulk, changed or deleted), and it hides
what agent_executions hides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from coherex.dashboard.data import Filters, SqlReader, SyncDatabase
from coherex.store.db import Database, DatabaseUrls, Identity

from .conftest import Seeded, make_tenant

# rows of the rollup that differ from the events they sum, in either direction (0 = exact)
DRIFT = """
with truth as (
  select ev.execution_id, ev.team_id, x.agent_id, x.created_at, ev.name as model, count(*)::int as llm_calls,
         sum(ev.tokens_in)::bigint as tokens_in, sum(ev.tokens_out)::bigint as tokens_out,
         sum(ev.cost_usd) as cost_usd
  from execution_events ev join agent_executions x on x.id = ev.execution_id
  where ev.type = 'llm_call' group by 1, 2, 3, 4, 5),
rollup as (
  select execution_id, team_id, agent_id, execution_created_at, model, llm_calls, tokens_in, tokens_out,
         cost_usd
  from execution_model_usage)
select (select count(*) from (select * from truth except select * from rollup) a)
     + (select count(*) from (select * from rollup except select * from truth) b)
"""


def drift(admin_url: str) -> int:
    with psycopg.connect(admin_url) as conn:
        return conn.execute(DRIFT).fetchone()[0]


def test_the_seeded_rollup_equals_the_events(seeded: Seeded):
    assert (
        seeded.sql("select count(*) from execution_model_usage where team_id = %s", (seeded.alpha.team_id,))[
            0
        ][0]
        > 1000
    )
    assert drift(seeded.urls.admin) == 0


async def test_rollup_follows_inserts_updates_and_deletes(db: Database, db_urls: DatabaseUrls):
    owner = await make_tenant(db, "owner")
    async with db.session(owner.identity) as s:
        spec = {
            "apiVersion": "coherex/v1",
            "kind": "Agent",
            "metadata": {"name": "two-models"},
            "spec": {"model": {"name": "gpt-4o-mini"}, "instructions": "Say hello."},
        }
        saved = await s.agents.save_spec(owner.team_id, spec, "metadata: {name: two-models}\n")
        run = await s.executions.create(owner.team_id, saved.agent.id, 1)
        await s.executions.add_event(
            run, "llm_call", name="gpt-4o-mini", tokens_in=100, tokens_out=10, cost_usd=Decimal("0.001")
        )
        await s.executions.add_event(run, "tool_call", name="python")
        await s.executions.add_event(
            run, "llm_call", name="gpt-4o", tokens_in=200, tokens_out=20, cost_usd=Decimal("0.02")
        )
        await s.executions.add_event(
            run, "llm_call", name="gpt-4o-mini", tokens_in=50, tokens_out=5, cost_usd=Decimal("0.0005")
        )
    rows = {r[0]: r[1:] for r in _rollup(db_urls.admin, run.id)}
    assert rows == {"gpt-4o-mini": (2, 150, 15, Decimal("0.0015")), "gpt-4o": (1, 200, 20, Decimal("0.02"))}
    assert drift(db_urls.admin) == 0

    with psycopg.connect(db_urls.admin) as conn:  # corrections and removals (as the owner of the data)
        conn.execute(
            "update execution_events set cost_usd = cost_usd * 2, name = 'gpt-4.1' "
            "where execution_id = %s and name = 'gpt-4o'",
            (run.id,),
        )
        conn.execute(
            "update execution_events set type = 'log' where execution_id = %s and tokens_in = 50", (run.id,)
        )
    assert {r[0]: r[1:] for r in _rollup(db_urls.admin, run.id)} == {
        "gpt-4o-mini": (1, 100, 10, Decimal("0.001")),
        "gpt-4.1": (1, 200, 20, Decimal("0.04")),
    }
    with psycopg.connect(db_urls.admin) as conn:
        conn.execute(
            "delete from execution_events where execution_id = %s and name = 'gpt-4o-mini'", (run.id,)
        )
    assert [r[0] for r in _rollup(db_urls.admin, run.id)] == ["gpt-4.1"]
    assert drift(db_urls.admin) == 0
    with psycopg.connect(db_urls.admin) as conn:
        conn.execute("delete from agent_executions where id = %s", (run.id,))
    assert _rollup(db_urls.admin, run.id) == [] and drift(db_urls.admin) == 0


async def test_rollup_hides_the_runs_of_other_peoples_personal_agents(db: Database, db_urls: DatabaseUrls):
    owner, colleague = await make_tenant(db, "owner"), await make_tenant(db, "colleague")
    async with db.session(owner.identity) as s:
        await s.members.add(owner.team_id, colleague.user_id, "member")
        spec = {
            "apiVersion": "coherex/v1",
            "kind": "Agent",
            "metadata": {"name": "mine"},
            "spec": {"model": {"name": "gpt-4o-mini"}, "instructions": "Say hello."},
        }
        saved = await s.agents.save_spec(owner.team_id, spec, "metadata: {name: mine}\n")
        run = await s.executions.create(owner.team_id, saved.agent.id, 1)
        await s.executions.add_event(
            run, "llm_call", name="gpt-4o-mini", tokens_in=1, cost_usd=Decimal("0.01")
        )
    with psycopg.connect(db_urls.admin) as conn:
        conn.execute("update agents set visibility = 'personal' where id = %s", (saved.agent.id,))
    now = datetime.now(UTC)
    f = Filters(owner.team_id, now - timedelta(days=1), now + timedelta(days=1))
    database = SyncDatabase(db_urls.app)
    try:
        assert list(SqlReader(database, owner.identity).cost_by(f, "model")["key"]) == ["gpt-4o-mini"]
        assert SqlReader(database, colleague.identity).cost_by(f, "model").empty
        assert SqlReader(database, Identity.user(colleague.user_id)).summary(f)["executions"] == 0
    finally:
        database.close()


def _rollup(admin_url: str, execution_id) -> list[tuple]:
    with psycopg.connect(admin_url) as conn:
        return conn.execute(
            "select model, llm_calls, tokens_in, tokens_out, cost_usd from execution_model_usage "
            "where execution_id = %s order by model",
            (execution_id,),
        ).fetchall()
