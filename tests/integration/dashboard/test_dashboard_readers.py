"""The two readers (SQL under the person's identity; supabase-py → real PostgREST with their JWT)
return the same frames, equal to SQL computed independently; team bravo sees none of alpha's data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pandas as pd
import pytest

from coherex.dashboard.auth import sign_jwt
from coherex.dashboard.data import Filters, Reader, SqlReader, SupabaseReader, SyncDatabase

from .conftest import Seeded, default_range


@pytest.fixture(scope="module")
def database(seeded: Seeded):
    d = SyncDatabase(seeded.urls.app)
    yield d
    d.close()


def readers(seeded: Seeded, database: SyncDatabase, postgrest, who) -> tuple[Reader, Reader]:
    token = sign_jwt(postgrest.jwt_secret, user_id=who.user_id)
    return SqlReader(database, who.identity), SupabaseReader(postgrest.url, postgrest.anon_key, token)


def _same(a: dict, b: dict) -> bool:
    """Equal summaries (a missing value, such as the p50 of an empty period, equals a missing value)."""
    return a.keys() == b.keys() and all((pd.isna(a[k]) and pd.isna(b[k])) or a[k] == b[k] for k in a)


def test_both_readers_return_the_same_numbers_and_they_match_sql(seeded: Seeded, database, postgrest):
    sql, rest = readers(seeded, database, postgrest, seeded.alpha)
    team = seeded.alpha.team_id
    start, end = default_range()
    f = Filters(team, start, end)

    summary = sql.summary(f)
    assert summary == rest.summary(f)
    # the overview's one call for this period and the previous one == the two single-period calls
    now, before = sql.summaries(f)
    assert _same(now, summary) and _same(before, sql.summary(f.previous()))
    assert all(_same(a, b) for a, b in zip(rest.summaries(f), (now, before), strict=False))
    assert (
        before["executions"]
        == seeded.sql(
            "select count(*) from agent_executions where team_id = %s and created_at >= %s and created_at < "
            "%s",
            (team, start - (end - start), start),
        )[0][0]
    )
    count, cost, tokens, completed, finished = seeded.sql(
        "select count(*), sum(cost_usd), sum(tokens_in + tokens_out), count(*) filter (where status = "
        "'completed'), count(*) filter (where status not in ('pending', 'running')) from agent_executions "
        "where team_id = %s and created_at >= %s and created_at < %s",
        (team, start, end),
    )[0]
    assert count > 1000
    assert (summary["executions"], summary["tokens"]) == (count, tokens)
    assert summary["cost_usd"] == pytest.approx(float(cost), abs=1e-6)
    assert summary["success_rate"] == pytest.approx(completed / finished)

    for dimension in ("agent", "model", "member"):
        pd.testing.assert_frame_equal(sql.cost_by(f, dimension), rest.cost_by(f, dimension))
    by_model = sql.cost_by(f, "model").set_index("key")
    expected = seeded.sql(
        "select ev.name, sum(ev.cost_usd) from execution_events ev join agent_executions e on e.id = "
        "ev.execution_id "
        "where e.team_id = %s and ev.type = 'llm_call' and e.created_at >= %s and e.created_at < %s group "
        "by 1",
        (team, start, end),
    )
    assert {k: round(float(v), 6) for k, v in expected} == {
        k: round(v, 6) for k, v in by_model["cost_usd"].items()
    }

    pd.testing.assert_frame_equal(sql.timeseries(f), rest.timeseries(f))
    assert int(sql.timeseries(f)["executions"].sum()) == count
    pd.testing.assert_frame_equal(sql.top_failing(f), rest.top_failing(f))

    agents = sql.agents(team)
    pd.testing.assert_frame_equal(agents, rest.agents(team))
    one = UUID(agents["id"].iloc[0])
    narrowed = Filters(team, start, end, (one,))
    assert sql.summary(narrowed) == rest.summary(narrowed)
    assert _same(sql.summaries(narrowed)[0], sql.summary(narrowed))
    assert _same(rest.summaries(narrowed)[1], sql.summary(narrowed.previous()))
    assert (
        sql.summary(narrowed)["executions"]
        == seeded.sql(
            "select count(*) from agent_executions where agent_id = %s and created_at >= %s and created_at "
            "< %s",
            (one, start, end),
        )[0][0]
    )
    pd.testing.assert_frame_equal(sql.versions(team, one), rest.versions(team, one))

    runs = sql.executions(f, ["failed"], limit=50)
    pd.testing.assert_frame_equal(runs, rest.executions(f, ["failed"], limit=50))
    assert set(runs["status"]) == {"failed"} and len(runs) == 50
    first = UUID(runs["id"].iloc[0])
    assert sql.execution(team, first) == rest.execution(team, first)
    pd.testing.assert_frame_equal(sql.events(team, first), rest.events(team, first))

    for name in ("collections", "data_sources", "audit", "usage"):
        pd.testing.assert_frame_equal(getattr(sql, name)(team), getattr(rest, name)(team))
    pd.testing.assert_frame_equal(sql.documents(team, "handbook"), rest.documents(team, "handbook"))
    assert (
        sql.collections(team)["chunks"].iloc[0]
        == seeded.sql("select count(*) from knowledge_chunks where team_id = %s", (team,))[0][0]
    )


def test_team_bravo_sees_none_of_alphas_data_through_either_reader(seeded: Seeded, database, postgrest):
    start, end = (
        datetime.now(UTC) - timedelta(days=400),
        datetime.now(UTC) + timedelta(days=1),
    )
    alpha_run = UUID(
        str(
            seeded.sql("select id from agent_executions where team_id = %s limit 1", (seeded.alpha.team_id,))[
                0
            ][0]
        )
    )
    for reader in readers(seeded, database, postgrest, seeded.bravo):
        # asking for alpha's team explicitly: RLS leaves nothing to count
        f = Filters(seeded.alpha.team_id, start, end)
        assert reader.summary(f)["executions"] == 0
        assert reader.summary(f)["cost_usd"] == 0
        assert [s["executions"] for s in reader.summaries(f)] == [0, 0]
        assert reader.cost_by(f, "model").empty and reader.executions(f).empty
        assert reader.execution(seeded.alpha.team_id, alpha_run) is None
        assert reader.events(seeded.alpha.team_id, alpha_run).empty
        assert reader.collections(seeded.alpha.team_id).empty
        assert reader.documents(seeded.alpha.team_id, "handbook").empty
        assert (
            reader.search(seeded.alpha.team_id, "handbook", "expense").empty
            if isinstance(reader, SupabaseReader)
            else True
        )
        assert reader.usage(seeded.alpha.team_id).empty and reader.agents(seeded.alpha.team_id).empty
        # and its own team shows only its own three runs
        own = reader.summary(Filters(seeded.bravo.team_id, start, end))
        assert (own["executions"], own["cost_usd"]) == (3, pytest.approx(0.03))


def test_full_text_search_ranks_and_highlights_chunks(seeded: Seeded, postgrest):
    token = sign_jwt(postgrest.jwt_secret, user_id=seeded.alpha.user_id)
    hits = SupabaseReader(postgrest.url, postgrest.anon_key, token).search(
        seeded.alpha.team_id, "handbook", "when are receipts uploaded"
    )
    assert hits["title"].iloc[0] == "Expense policy"
    assert "**Receipts**" in hits["highlight"].iloc[0]
