"""Every page through Streamlit's AppTest, signed in as a real user against the seeded database:
the numbers shown equal SQL computed independently here."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from coherex.settings import reset_settings_cache

from .conftest import PASSWORD, Seeded, default_range

APP = str(Path(__file__).resolve().parents[3] / "dashboard_app.py")


@pytest.fixture
def signed_in(seeded: Seeded, monkeypatch) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", seeded.urls.app)
    reset_settings_cache()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="email_input").input(seeded.alpha.email)
    at.text_input(key="password_input").input(PASSWORD)
    at.button(key="sign_in").click().run()
    assert not at.exception, at.exception
    yield at
    reset_settings_cache()


def page(at: AppTest, name: str) -> AppTest:
    at.sidebar.radio(key="page").set_value(name).run()
    assert not at.exception, at.exception
    return at


def test_wrong_password_is_refused(seeded: Seeded, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", seeded.urls.app)
    reset_settings_cache()
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_input(key="email_input").input(seeded.alpha.email)
    at.text_input(key="password_input").input("not the password")
    at.button(key="sign_in").click().run()
    assert at.error[0].value == "Wrong email or password."
    assert "page" not in [r.key for r in at.sidebar.radio]


def test_overview_shows_the_numbers_sql_gives(seeded: Seeded, signed_in: AppTest):
    at = signed_in
    start, end = default_range()
    team = seeded.alpha.team_id
    count, cost, tokens, rate, p50 = seeded.sql(
        "select count(*), sum(cost_usd), sum(tokens_in + tokens_out), "
        "(count(*) filter (where status = 'completed'))::float / count(*) filter (where status not in "
        "('pending', 'running')), percentile_cont(0.5) within group (order by duration_ms) "
        "from agent_executions where team_id = %s and created_at >= %s and created_at < %s",
        (team, start, end),
    )[0]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Executions"] == f"{count:,}"
    assert shown["Cost"] == f"${float(cost):,.2f}"
    assert shown["Tokens"] == f"{tokens:,}"
    assert shown["Success rate"] == f"{rate:.1%}"
    assert shown["Duration p50"] == f"{p50 / 1000:.2f} s"

    by_agent = at.dataframe[0].value.set_index("agent")
    expected = seeded.sql(
        "select a.name, count(*), sum(e.cost_usd) from agent_executions e join agents a on a.id = e.agent_id "
        "where e.team_id = %s and e.created_at >= %s and e.created_at < %s group by 1",
        (team, start, end),
    )
    assert {n: (c, round(float(s), 6)) for n, c, s in expected} == {
        n: (r.executions, round(r.cost_usd, 6)) for n, r in by_agent.iterrows()
    }
    by_member = at.dataframe[2].value.set_index("member")
    assert int(by_member["executions"].sum()) == count
    failing = at.dataframe[3].value
    worst = seeded.sql(
        "select a.name, count(*) from agent_executions e join agents a on a.id = e.agent_id where e.team_id "
        "= %s and e.status in ('failed', 'timed_out') and e.created_at >= %s and e.created_at < %s "
        "group by 1 order by 2 desc, 1 limit 1",
        (team, start, end),
    )[0]
    assert (failing["agent"].iloc[0], failing["failures"].iloc[0]) == worst

    # narrowing to one agent changes every number to that agent's
    name, agent_count = expected[0][0], expected[0][1]
    at.sidebar.multiselect(key="agents").set_value([name]).run()
    assert {m.label: m.value for m in at.metric}["Executions"] == f"{agent_count:,}"


def test_executions_page_drills_into_one_execution(seeded: Seeded, signed_in: AppTest):
    at = page(signed_in, "Executions")
    at.multiselect(key="status_filter").set_value(["failed"]).run()
    table = at.dataframe[0].value
    assert set(table["status"]) == {"failed"}
    start, end = default_range()
    assert len(table) == min(
        500,
        seeded.sql(
            "select count(*) from agent_executions where team_id = %s and status = 'failed' and created_at "
            ">= %s and created_at < %s",
            (seeded.alpha.team_id, start, end),
        )[0][0],
    )
    run_id = table["id"].iloc[0]
    tokens, cost, version, error = seeded.sql(
        "select tokens_in + tokens_out, cost_usd, agent_version, error from agent_executions where id = %s",
        (run_id,),
    )[0]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Tokens"] == f"{tokens:,}" and shown["Cost"] == f"${float(cost):.6f}"
    assert shown["Spec version"] == f"v{version}"
    assert at.error[0].value == error
    events = at.dataframe[1].value
    expected = seeded.sql(
        "select seq, type, cost_usd from execution_events where execution_id = %s order by seq", (run_id,)
    )
    assert list(events["seq"]) == [s for s, _, _ in expected]
    assert list(events["type"]) == [t for _, t, _ in expected]
    log_types = [t for _, t, _ in expected if t in ("stdout", "stderr", "log", "error")]
    shown_lines = at.code[0].value.splitlines()
    if log_types:
        marks = [
            line.split("]")[0].lstrip("[")
            for line in shown_lines
            if line.startswith(("[stdout]", "[stderr]", "[log]", "[error]"))
        ]
        assert marks == log_types
    else:
        assert shown_lines == ["(no log lines)"]


def test_agents_page_shows_versions_yaml_and_diff(seeded: Seeded, signed_in: AppTest):
    at = page(signed_in, "Agents")
    agents = at.dataframe[0].value
    expected = seeded.sql(
        "select name, current_version from agents where team_id = %s order by name", (seeded.alpha.team_id,)
    )
    assert list(zip(agents["name"], agents["versions"], strict=False)) == expected
    name = next(n for n, v in expected if v >= 2)
    at.selectbox(key="agent_pick").set_value(name).run()
    yaml_text = seeded.sql(
        "select spec_yaml from agent_versions v join agents a on a.id = v.agent_id "
        "where a.name = %s and a.team_id = %s and v.version = a.current_version",
        (name, seeded.alpha.team_id),
    )[0][0]
    assert at.code[0].value.strip() == yaml_text.strip()
    diff = at.code[1].value
    assert diff.startswith(f"--- {name} v") and "-    maxSteps: 10" in diff and "+    maxSteps: 15" in diff


def test_knowledge_page_lists_documents_with_chunks(seeded: Seeded, signed_in: AppTest):
    at = page(signed_in, "Knowledge base")
    docs = at.dataframe[1].value.set_index("title")
    expected = seeded.sql(
        "select d.title, count(c.id), d.size_bytes from knowledge_documents d join knowledge_chunks c "
        "on c.document_id = d.id where d.team_id = %s group by d.id",
        (seeded.alpha.team_id,),
    )
    assert {t: (n, b) for t, n, b in expected} == {t: (r.chunks, r.size_bytes) for t, r in docs.iterrows()}
    assert at.dataframe[0].value["chunks"].iloc[0] == sum(n for _, n, _ in expected)


def test_sources_audit_and_usage_pages(seeded: Seeded, signed_in: AppTest):
    team = seeded.alpha.team_id
    at = page(signed_in, "Data sources")
    unhealthy = seeded.sql(
        "select count(*) from data_sources where team_id = %s and status <> 'active'", (team,)
    )
    assert at.metric[0].value == str(unhealthy[0][0])
    sources = at.dataframe[0].value.set_index("name")
    assert sources.loc["team-github", "last_error"].startswith("401 Bad credentials")

    at = page(at, "Audit log")
    assert (
        len(at.dataframe[0].value)
        == seeded.sql("select count(*) from audit_log where team_id = %s", (team,))[0][0]
    )

    at = page(at, "Usage and quotas")
    usage = at.dataframe[0].value
    expected = seeded.sql(
        "select period, executions, cost_usd from usage where team_id = %s order by period desc", (team,)
    )
    assert [(p, n, round(float(c), 6)) for p, n, c in expected] == [
        (r.period, r.executions, round(r.cost_usd, 6)) for r in usage.itertuples()
    ]
    assert (
        sum(n for _, n, _ in expected)
        == seeded.sql("select count(*) from agent_executions where team_id = %s", (team,))[0][0]
    )


def test_knowledge_search_shows_ranked_highlighted_chunks(signed_in: AppTest):
    at = page(signed_in, "Knowledge base")
    at.text_input(key="kb_query").input("when are receipts uploaded").run()
    assert not at.exception, at.exception
    texts = [m.value for m in at.markdown]
    first = next(i for i, t in enumerate(texts) if t.startswith("**1. "))
    assert texts[first].startswith("**1. Expense policy**")
    assert "**Receipts**" in texts[first + 1] or "**receipts**" in texts[first + 1].lower()


def test_a_database_that_goes_away_is_a_message_and_the_page_comes_back(seeded: Seeded, signed_in: AppTest):
    import psycopg

    dbname = psycopg.conninfo.conninfo_to_dict(seeded.urls.app)["dbname"]

    def allow(on: bool) -> None:
        other_db = psycopg.conninfo.make_conninfo(seeded.urls.admin, dbname="postgres")
        with psycopg.connect(other_db, autocommit=True) as conn:
            conn.execute(f'alter database "{dbname}" allow_connections {str(on).lower()}')
            if not on:  # and drop the dashboard's open connections, as a restart would
                conn.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = %s and pid <> pg_backend_pid()",
                    (dbname,),
                )

    before = {m.label: m.value for m in page(signed_in, "Overview").metric}
    assert before["Executions"] != "0"
    allow(False)
    try:
        page(signed_in, "Executions")
        [error] = signed_in.error
        assert "database" in error.value and "Nothing is lost" in error.value
    finally:
        allow(True)
    # back as soon as the pool has reconnected (its retry backoff may hold the first render briefly)
    deadline = time.monotonic() + 20
    while page(signed_in, "Overview").error and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not signed_in.error
    assert {m.label: m.value for m in signed_in.metric} == before


def test_repeated_wrong_passwords_are_throttled_with_a_message(seeded: Seeded, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", seeded.urls.app)
    monkeypatch.setenv("COHEREX_LOGIN_ATTEMPTS", "2")
    reset_settings_cache()
    at = AppTest.from_file(APP, default_timeout=60).run()
    for expected in ("Wrong email or password.", "Wrong email or password.", "Too many failed sign-ins"):
        at.text_input(key="email_input").input(seeded.alpha.email)
        at.text_input(key="password_input").input("not it")
        at.button(key="sign_in").click().run()
        assert not at.exception, at.exception
        assert at.error[0].value.startswith(expected)
    reset_settings_cache()
