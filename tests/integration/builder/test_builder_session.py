"""The builder session driven through the fake OpenAI server with the real `openai` client."""

from __future__ import annotations

import asyncio

import psycopg

from coherex.builder import MAX_REPAIRS, summarize
from coherex.spec import load_spec
from coherex.testing.fake_openai import Error, Text, ToolCall

ANALYST = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: sales-analyst, description: Answer questions about the sales numbers}
spec:
  instructions: Answer {{question}} with numbers.
  inputs: {question: {type: string, default: What sold best?}}
  tools: [{use: python}]
"""
BROKEN = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: Sales Analyst}
spec:
  instructions: Answer with numbers.
  tools: [{use: pyhton}]
  triggers: [{schedule: {cron: "every morning"}}]
"""


async def test_scripted_conversation_saves_a_valid_spec(db, builder, fake_llm, ui, two_teams):
    fake_llm.script(
        [
            ToolCall("use_template", {"name": "csv-analysis"}),
            Text("I started from the CSV analysis template. Which question should it answer?"),
            ToolCall(
                "update_spec",
                {
                    "changes": {
                        "metadata": {"name": "sales-analyst"},
                        "spec": {"inputs": {"question": {"default": "What sold best?"}}},
                    }
                },
            ),
            Text("Done: it answers what sold best."),
            ToolCall("save_spec", {"message": "first version"}),
            Text("Saved as sales-analyst."),
        ]
    )
    first = await builder.send("Analyse our sales CSV every time I upload one", ui)
    assert first.error is None and first.draft_changed
    assert "".join(ui.tokens).startswith("I started from the CSV analysis template")
    assert "runs Python code in an isolated sandbox" in summarize(builder.draft.spec)
    second = await builder.send("Which product sold best", ui)
    assert second.draft_changed and builder.draft.spec.spec.inputs["question"].default == "What sold best?"
    third = await builder.send("Save it", ui)
    assert third.text == "Saved as sales-analyst." and not builder.unsaved
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        agent = await s.agents.get_by_name(alpha.team_id, "sales-analyst")
        version = await s.agents.require_version(agent)
    assert agent.current_version == 1 and version.message == "first version"
    assert [t.use for t in load_spec(version.spec).spec.tools] == ["csv.summarize", "python"]
    # the model saw the team's context and the template that fits
    system = fake_llm.chat_requests[0].body["messages"][0]["content"]
    assert "csv-analysis" in system and "Alpha" in system
    assert [name for name, _ in ui.tools] == ["use_template", "update_spec", "save_spec"]
    assert third.tokens_in > 0 and third.llm_calls == 2


async def test_invalid_draft_is_repaired_before_it_is_shown(builder, fake_llm, ui):
    fake_llm.script(
        [
            ToolCall("draft_spec", {"yaml": BROKEN}),
            ToolCall("draft_spec", {"yaml": ANALYST}),
            Text("Here is your analyst."),
        ]
    )
    turn = await builder.send("An agent that answers questions about sales numbers", ui)
    assert turn.error is None and turn.problems == [] and turn.draft_changed
    assert builder.draft.name == "sales-analyst" and builder.draft.ready
    # the problems went back to the model, each with its path and what is valid
    fed_back = fake_llm.chat_requests[1].body["messages"][-1]["content"]
    for path in ("metadata.name", "spec.tools[0].use", "spec.triggers[0].schedule.cron"):
        assert path in fed_back
    assert "python" in fed_back  # the hint names the tool meant


async def test_repairs_are_bounded_and_the_person_gets_the_problems(builder, fake_llm, ui):
    fake_llm.always(ToolCall("draft_spec", {"yaml": BROKEN}))
    turn = await builder.send("Something with sales", ui)
    assert len(fake_llm.chat_requests) == MAX_REPAIRS + 1
    assert builder.draft is None and not turn.draft_changed
    assert any(p.path == "spec.tools[0].use" for p in turn.problems)
    assert "could not produce a valid agent spec" in turn.text
    fake_llm.reset()
    fake_llm.script([Text("Tell me which data it should read.")])
    assert (await builder.send("ok", ui)).text == "Tell me which data it should read."


async def test_missing_data_source_becomes_a_connect_step(db, builder, fake_llm, ui, two_teams):
    fake_llm.script([ToolCall("use_template", {"name": "email-digest"}), Text("Drafted the digest.")])
    turn = await builder.send("Every weekday at 8, summarise my unread mail into #ops", ui)
    assert turn.draft_changed and builder.draft.valid and not builder.draft.ready
    kinds = {(c.type, c.name) for c in builder.draft.connections}
    assert kinds == {("gmail", "work-mail"), ("slack", "team-slack")}
    assert "coherex sources add gmail work-mail" in builder.draft.connections[0].instructions()
    # once the team connects them, the same draft can be saved
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        await s.sources.create(alpha.team_id, "work-mail", "gmail", {})
        await s.sources.create(alpha.team_id, "team-slack", "slack", {})
    # ...and say so in any words: the next turn finds the draft ready (whatever the model does)
    fake_llm.script([Text("Great.")])
    turn = await builder.send("done, check again", ui)
    assert turn.draft_changed and builder.draft.ready and builder.draft.connections == []
    saved = await builder.save()
    assert saved.agent.name == "email-digest" and builder.draft.ready


async def test_test_run_streams_its_steps_and_schedule_adds_a_version(db, builder, fake_llm, ui):
    fake_llm.script(
        [ToolCall("draft_spec", {"yaml": ANALYST}), Text("Ready."), Text("Widgets sold best: 1,200 units.")]
    )
    await builder.send("sales analyst", ui)
    final = await builder.test_run(ui=ui)
    assert final.status == "completed" and final.output == {"text": "Widgets sold best: 1,200 units."}
    assert ui.started.id == final.id and ui.finished.duration_ms is not None
    assert [e.type for e in ui.run_events] == ["llm_call", "status"]
    assert ui.run_events[0].tokens_in > 0
    answer = await builder.schedule("0 9 * * 1-5", "Europe/Berlin")
    assert answer["valid"] and answer["saved_version"] == 2


async def test_stop_ends_a_running_test_run(builder, fake_llm, ui):
    from coherex.testing.fake_openai import Slow

    fake_llm.script([ToolCall("draft_spec", {"yaml": ANALYST}), Text("Ready."), Slow(3, Text("late"))])
    await builder.send("sales analyst", ui)
    run = asyncio.create_task(builder.test_run(ui=ui))
    while builder.running is None:
        await asyncio.sleep(0.05)
    assert await builder.stop()
    final = await run
    assert final.status == "cancelled"


async def test_a_dead_llm_gives_a_clear_message_and_the_conversation_continues(builder, fake_llm, ui):
    fake_llm.always(Error(500, message="upstream exploded"))
    turn = await builder.send("An agent for my mail", ui)
    assert turn.error.startswith("The language model is not answering right now")
    assert "Traceback" not in turn.error
    fake_llm.reset()
    fake_llm.script([Text("Which mailbox should it read?")])
    assert (await builder.send("An agent for my mail", ui)).text == "Which mailbox should it read?"


async def test_a_dropped_database_gives_a_clear_message_and_the_conversation_continues(
    builder, fake_llm, ui, db_urls
):
    fake_llm.script([Text("Hello! What should the agent do?")])
    await builder.send("hi", ui)
    name = psycopg.conninfo.conninfo_to_dict(db_urls.admin)["dbname"]
    server = psycopg.conninfo.make_conninfo(db_urls.admin, dbname="postgres")

    def drop_connections(*, refuse_new: bool) -> None:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'alter database "{name}" allow_connections {str(not refuse_new).lower()}')
            admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (name,),
            )

    # connections cut (as a restart does) are replaced unnoticed
    drop_connections(refuse_new=False)
    fake_llm.script([ToolCall("list_data_sources", {}), Text("None are connected yet.")])
    assert (await builder.send("which data sources do we have?", ui)).text == "None are connected yet."
    # a database that stays away is a clear message, and the conversation goes on once it is back
    drop_connections(refuse_new=True)
    fake_llm.script([ToolCall("list_data_sources", {})])
    turn = await builder.send("which data sources do we have?", ui)
    assert turn.error and turn.error.startswith("A service Coherex needs is not available")
    drop_connections(refuse_new=False)
    fake_llm.script([ToolCall("list_data_sources", {}), Text("Still none.")])
    assert (await builder.send("which data sources do we have?", ui)).text == "Still none."


async def test_a_discarded_draft_stays_discarded(db, builder, fake_llm, ui, two_teams, llm):
    """Discard (a chat button) drops the draft for good: not in the thread's saved state, not back
    on resume, and the next change has nothing to edit."""
    from coherex.builder import BuilderSession

    fake_llm.script(
        [
            ToolCall("draft_spec", {"yaml": ANALYST}),
            Text("Here is the analyst."),
            ToolCall("update_spec", {"changes": {"spec": {"instructions": "Answer briefly."}}}),
            Text("There is no draft to change."),
        ]
    )
    await builder.send("An agent that answers questions about our sales", ui)
    assert builder.draft is not None
    builder.discard()
    state = builder.state()
    assert state["draft"] is None and state["agent_id"] is None
    alpha, _ = two_teams
    resumed = BuilderSession(db, alpha.identity, alpha.team_id, llm=llm, team_name="Alpha")
    await resumed.restore(state)
    assert resumed.draft is None
    turn = await builder.send("Make the answers brief", ui)
    assert builder.draft is None and not turn.draft_changed
    tool_result = fake_llm.chat_requests[3].body["messages"][-1]["content"]
    assert "no draft" in tool_result.lower()


async def test_existing_agents_are_listed_run_reviewed_and_reopened(db, builder, fake_llm, ui, two_teams):
    """The builder's tools for agents already saved: "list my agents", "run it now", "what did it
    do?", "change it"."""
    import json

    from coherex.services.agents import apply_spec

    alpha, _ = two_teams
    fact = ANALYST.replace("sales-analyst", "daily-fact").replace("  tools: [{use: python}]\n", "")
    async with db.session(alpha.identity) as s:
        await apply_spec(s, alpha.team_id, fact)

    def tool_result(request: int) -> object:
        return json.loads(fake_llm.chat_requests[request].body["messages"][-1]["content"])

    fake_llm.script(
        [
            ToolCall("list_agents", {}),
            Text("You have daily-fact."),
            ToolCall("run_agent", {"name": "daily-fact"}),
            Text("Octopuses have three hearts."),
            Text("It ran."),
            ToolCall("recent_runs", {"name": "daily-fact"}),
            Text("It completed once."),
            ToolCall("open_agent", {"name": "daily-fact"}),
            Text("Opened it."),
        ]
    )
    await builder.send("Which agents do we have?", ui)
    assert [a["name"] for a in tool_result(1)] == ["daily-fact"]

    await builder.send("Run daily-fact now", ui)
    assert ui.finished.status == "completed" and ui.finished.output == {
        "text": "Octopuses have three hearts."
    }
    assert tool_result(4)["status"] == "completed"

    await builder.send("What did it do last time?", ui)
    [last] = tool_result(6)
    assert last["status"] == "completed" and "Octopuses" in json.dumps(last) and last["trigger"] == "chat"

    await builder.send("Open daily-fact, I want to change it", ui)
    assert tool_result(8)["agent"] == "daily-fact" and "daily-fact" in tool_result(8)["yaml"]
    assert builder.agent.name == "daily-fact" and builder.draft.spec.metadata.name == "daily-fact"
    assert not builder.unsaved


def test_a_connect_step_links_to_the_providers_sign_in_when_this_install_can(monkeypatch):
    """Gmail with a Google OAuth client configured: the chat shows a sign-in link (for the chat's
    team); Slack (a bot token) the connect form, and with a client id the sign-in beside it."""
    from coherex.builder.draft import Connection
    from coherex.settings import reset_settings_cache

    gmail, slack = (
        Connection("data_source", "work-mail", "gmail"),
        Connection("data_source", "team-slack", "slack"),
    )
    monkeypatch.delenv("SLACK_CLIENT_ID", raising=False)
    monkeypatch.delenv("GOOGLE_CLIENT_ID", raising=False)
    reset_settings_cache()
    assert "sign in" not in gmail.instructions("alpha")
    monkeypatch.setenv("GOOGLE_CLIENT_ID", "coherex-test.apps.googleusercontent.com")
    reset_settings_cache()
    try:
        assert "[sign in to gmail](/oauth/gmail/start?name=work-mail&team=alpha)" in gmail.instructions(
            "alpha"
        )
        assert "sign in" not in slack.instructions("alpha")
        assert (
            "[open the connect form](/connect?type=slack&name=team-slack&team=alpha)"
            in slack.instructions("alpha")
        )
        # Slack with its OAuth client: the sign-in, and the form for a bot token beside it
        monkeypatch.setenv("SLACK_CLIENT_ID", "slack-client")
        reset_settings_cache()
        both = slack.instructions("alpha")
        assert "[sign in to slack](/oauth/slack/start?name=team-slack&team=alpha)" in both
        assert "[open the connect form](/connect?type=slack&name=team-slack&team=alpha)" in both
        assert "open the connect form" not in gmail.instructions("alpha")  # Gmail: sign-in only
    finally:
        reset_settings_cache()
