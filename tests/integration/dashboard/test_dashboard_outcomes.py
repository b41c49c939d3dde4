"""The dashboard tells a run that answered after a failed tool call apart from a success: the
success rate leaves it out, it is counted on its own, its agent is among the failing ones, and the
run's page names the failed call."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from coherex.llm import model_in_use
from coherex.llm.local_model import MODEL_NAME
from coherex.llm.openai_client import OpenAIClient
from coherex.retry import RetryPolicy
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.settings import reset_settings_cache
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

APP = str(Path(__file__).resolve().parents[3] / "dashboard_app.py")
SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: launcher}
    spec:
      instructions: Launch the rocket.
    """)


@pytest.fixture
async def two_runs(db, two_teams):
    """One plain success, and one run whose only tool call failed (a tool the model made up)."""
    alpha, _ = two_teams
    with FakeOpenAI() as fake:
        llm = OpenAIClient(api_key=fake.api_key, base_url=fake.base_url, retry=RetryPolicy(max_attempts=1))
        runtime = Runtime(db, llm=llm)
        async with db.session(alpha.identity) as s:
            agent = (await apply_spec(s, alpha.team_id, SPEC)).agent
        fake.script(
            [Text("Nothing to launch today."), ToolCall("send_rocket", {}), Text("The rocket is on its way.")]
        )
        ok = await runtime.run((await runtime.create(alpha.identity, alpha.team_id, agent)).id)
        bad = await runtime.run((await runtime.create(alpha.identity, alpha.team_id, agent)).id)
    assert (ok.outcome, bad.outcome) == ("completed", "completed_with_errors")
    return alpha, bad


def test_a_run_completed_with_errors_is_no_success_on_the_dashboard(db_urls, two_runs, monkeypatch):
    alpha, bad = two_runs
    monkeypatch.setenv("DATABASE_URL", db_urls.app)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):  # the platform runs the offline model
        monkeypatch.delenv(name, raising=False)
    reset_settings_cache()
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        at.text_input(key="email_input").input(alpha.email)
        at.text_input(key="password_input").input("correct horse")
        at.button(key="sign_in").click().run()
        assert not at.exception, at.exception

        shown = {m.label: m.value for m in at.metric}
        assert shown["Executions"] == "2" and shown["Success rate"] == "50.0%"
        assert shown["Completed with errors"] == "1"
        failing = at.dataframe[3].value
        assert list(failing["agent"]) == ["launcher"] and failing["failures"].iloc[0] == 1
        assert (
            failing["last_error"]
            .iloc[0]
            .startswith("completed with errors: Error: There is no tool 'send_rocket'")
        )

        at.sidebar.radio(key="page").set_value("Executions").run()
        at.multiselect(key="status_filter").set_value(["completed_with_errors"]).run()
        table = at.dataframe[0].value
        assert list(table["id"]) == [str(bad.id)] and list(table["tool_errors"]) == [1]
        assert "completed with errors" in at.subheader[-1].value
        assert "the answer came after a failed tool call" in at.warning[0].value
        assert any("✗ send_rocket" in c.value for c in at.code)

        # the Agents page names the model the runs used
        at.sidebar.radio(key="page").set_value("Agents").run()
        assert list(at.dataframe[0].value["model"]) == [model_in_use(None)]
        assert model_in_use(None).startswith(MODEL_NAME)
    finally:
        reset_settings_cache()


@pytest.fixture
async def boss_run(db, two_teams):
    """A run of `boss` that called the sub-agent `helper` once."""
    alpha, _ = two_teams
    helper = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: helper}\nspec: {instructions: Help.}\n"
    boss = (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: boss}\n"
        "spec:\n  instructions: Delegate.\n  tools:\n    - use: agent\n      agent: helper\n"
    )
    with FakeOpenAI() as fake:
        llm = OpenAIClient(api_key=fake.api_key, base_url=fake.base_url, retry=RetryPolicy(max_attempts=1))
        runtime = Runtime(db, llm=llm)
        async with db.session(alpha.identity) as s:
            await apply_spec(s, alpha.team_id, helper)
            agent = (await apply_spec(s, alpha.team_id, boss)).agent
        fake.script([ToolCall("helper", {}), Text("helped"), Text("done")])
        run = await runtime.run((await runtime.create(alpha.identity, alpha.team_id, agent)).id)
        async with db.session(alpha.identity) as s:
            (child,) = await s.executions.children(run.id)
    return alpha, run, child


def test_a_runs_page_lists_the_sub_agent_runs_it_started(db_urls, boss_run, monkeypatch):
    alpha, run, child = boss_run
    monkeypatch.setenv("DATABASE_URL", db_urls.app)
    reset_settings_cache()
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        at.text_input(key="email_input").input(alpha.email)
        at.text_input(key="password_input").input("correct horse")
        at.button(key="sign_in").click().run()
        at.sidebar.radio(key="page").set_value("Executions").run()
        pick = at.selectbox(key="execution_pick")
        pick.set_value(next(o for o in pick.options if o.startswith(str(run.id)[:8]))).run()
        assert not at.exception, at.exception
        [table] = [d.value for d in at.dataframe if "called by" in d.value.columns]
        assert list(table["agent"]) == ["helper v1"] and list(table["execution"]) == [str(child.id)]
        assert list(table["outcome"]) == ["completed"] and table["called by"].iloc[0].endswith("(helper)")
    finally:
        reset_settings_cache()
