"""`coherex demo seed` through the real CLI against the test database."""

from __future__ import annotations

import json

import psycopg

from coherex.cli import main


def test_demo_seed_fills_the_team_with_consistent_activity(cli_env, db_urls, capsys):
    assert main(["demo", "seed", "--executions", "400", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["executions"] == 400 and out["agents"] >= 5
    with psycopg.connect(db_urls.admin) as conn:
        team = conn.execute("select id from teams where slug = %s", (out["team"],)).fetchone()[0]
        runs, mismatched = conn.execute(
            "select count(*), count(*) filter (where e.cost_usd <> coalesce(t.cost, 0) or e.event_count <> "
            "t.n) from agent_executions e left join (select execution_id, sum(cost_usd) cost, count(*) n "
            "from execution_events group by 1) t on t.execution_id = e.id where e.team_id = %s",
            (team,),
        ).fetchone()
        assert (runs, mismatched) == (400, 0)  # every run's cost is the sum of its steps' costs
        by_model = conn.execute(
            "select count(*) filter (where u.cost_usd is distinct from t.cost or u.llm_calls is distinct "
            "from t.n), "
            "count(t.n) from execution_model_usage u full join (select execution_id, name, sum(cost_usd) "
            "cost, count(*) n from execution_events where type = 'llm_call' group by 1, 2) t "
            "on t.execution_id = u.execution_id and t.name = u.model where coalesce(u.team_id, %s) = %s",
            (team, team),
        ).fetchone()
        assert by_model[0] == 0 and by_model[1] > 300  # cost by model is filled from the demo's LLM calls
        usage = conn.execute(
            "select sum(executions), sum(cost_usd) from usage where team_id = %s", (team,)
        ).fetchone()
        finished_cost = conn.execute(
            "select sum(cost_usd) from agent_executions where team_id = %s and finished_at is not null",
            (team,),
        ).fetchone()[0]
        assert usage == (400, finished_cost)  # quotas see the demo runs like real ones
        assert (
            conn.execute("select count(*) from knowledge_chunks where team_id = %s", (team,)).fetchone()[0]
            > 10
        )
    assert main(["demo", "seed", "--executions", "-1"]) == 1
