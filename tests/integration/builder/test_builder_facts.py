"""The builder gets the facts it needs (issue 17, items 8-11), on the in-process ScriptedLLM playing a
capable model: the spec reference in its prompt, templates bound to the team's sources, what a save
made live, plain "not saved" answers, and facts asked of the person instead of invented."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from coherex.builder import BuilderSession
from coherex.builder.evaluate import run_case
from coherex.services.triggers import next_fire
from coherex.settings import get_settings
from coherex.testing.fake_openai import Text, ToolCall

PUBLIC = "https://coherex.example.test"

LIVE = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: help-desk, description: 'Answer #help questions'}
spec:
  instructions: Answer the question in {{event}}.
  inputs:
    event: {type: object, description: the Slack message, default: {}}
  tools:
    - {use: slack.reply_in_thread, dataSource: team-slack, access: write}
  triggers:
    - schedule: {cron: 0 8 * * 1-5, timezone: Europe/Berlin}
    - webhook: {input: event}
    - event: {source: team-slack, type: slack.message, filter: {channel: '#help'}}
"""

TRIAGE = """\
apiVersion: coherex/v1
kind: Agent
metadata: {name: triage}
spec:
  instructions: Label the new issues of {{repo}}.
  inputs:
    repo: {type: string, description: the repository (owner/name), default: owner/repo}
  tools:
    - {use: github.list_issues, dataSource: acme-github, access: read}
    - {use: github.add_labels, dataSource: acme-github, access: write}
  triggers:
    - schedule: {cron: 0 9 * * *, timezone: UTC}
"""


@pytest.fixture
async def alpha(two_teams):
    return two_teams[0]


async def add_sources(db, team, sources: dict[str, str]):
    async with db.session(team.identity) as s:
        return {n: await s.sources.create(team.team_id, n, kind, {}) for n, kind in sources.items()}


def session_for(db, team, llm, **settings) -> BuilderSession:
    return BuilderSession(
        db,
        team.identity,
        team.team_id,
        llm=llm,
        team_name="Alpha",
        settings=get_settings().model_copy(update=settings) if settings else None,
    )


def answers(ui) -> dict[str, list]:
    out: dict[str, list] = {}
    for name, result in ui.tools:
        out.setdefault(name, []).append(json.loads(result))
    return out


async def test_the_system_prompt_holds_the_spec_reference(db, alpha, scripted_llm, ui):
    scripted_llm.script([Text("What should it do?")])
    await session_for(db, alpha, scripted_llm).send("Make me an agent", ui)
    system = scripted_llm.chat_requests[0].body["messages"][0]
    assert system["role"] == "system"
    for fact in (
        "# The spec format",
        "`inputs`: a mapping",
        "`with:`",
        "filter: {field: value}",
        "`maxSteps`",
    ):
        assert fact in system["content"]
    assert "{spec_reference}" not in system["content"] and "{{name}}" in system["content"]


async def test_a_template_is_bound_to_the_teams_source_and_valid_at_once(db, alpha, scripted_llm, ui):
    await add_sources(db, alpha, {"acme-github": "github"})
    session = session_for(db, alpha, scripted_llm)
    scripted_llm.script([ToolCall("use_template", {"name": "github-issue-triage"}), Text("Drafted.")])
    turn = await session.send("Triage our new GitHub issues", ui)
    (answer,) = answers(ui)["use_template"]
    assert answer["valid"] is True and "problems" not in answer  # no repair attempt spent on it
    assert session.draft.ready and turn.draft_changed
    assert {t.dataSource for t in session.draft.spec.spec.tools} == {"acme-github"}
    assert [t.event.source for t in session.draft.spec.spec.triggers if t.event] == ["acme-github"]
    assert "acme-github" in answer["yaml"] and "dataSource: github\n" not in answer["yaml"]
    assert answer["bound_to_team"] == ["'github' is the team's github source 'acme-github'"]


async def test_with_several_sources_of_a_type_the_first_is_used_and_the_choice_said(
    db, alpha, scripted_llm, ui
):
    await add_sources(db, alpha, {"zeta-github": "github", "acme-github": "github"})
    session = session_for(db, alpha, scripted_llm)
    scripted_llm.script([ToolCall("use_template", {"name": "github-issue-triage"}), Text("Which one?")])
    await session.send("Triage our new GitHub issues", ui)
    (answer,) = answers(ui)["use_template"]
    assert answer["valid"] is True and session.draft.ready
    assert {t.dataSource for t in session.draft.spec.spec.tools} == {"acme-github"}
    (note,) = answer["bound_to_team"]
    assert "several: acme-github, zeta-github" in note and "ask the person" in note


async def test_save_spec_says_what_became_live(db, alpha, scripted_llm, ui):
    sources = await add_sources(db, alpha, {"team-slack": "slack"})
    session = session_for(db, alpha, scripted_llm, public_url=PUBLIC + "/")
    scripted_llm.script(
        [ToolCall("draft_spec", {"yaml": LIVE}), ToolCall("save_spec", {"message": "v1"}), Text("Saved.")]
    )
    await session.send("Answer questions in #help", ui)
    (saved,) = answers(ui)["save_spec"]
    assert saved["saved"] is True and saved["agent"] == "help-desk" and saved["version"] == 1
    schedule, webhook, event = saved["live"]
    berlin = ZoneInfo("Europe/Berlin")
    after = datetime.now(UTC)
    nxt = next_fire("0 8 * * 1-5", "Europe/Berlin", after).astimezone(berlin)
    assert schedule.startswith("schedule: runs ") and "(Europe/Berlin)" in schedule
    assert f"next run {nxt:%A %Y-%m-%d} 08:00 Europe/Berlin" in schedule
    # the address the platform serves webhooks and a source's events at
    from coherex.api.app import create_app

    app = create_app(chat=False)
    agent_id = session.agent.id
    assert f"POST {PUBLIC}{app.url_path_for('receive_webhook', agent_id=str(agent_id))}," in webhook
    assert f"/api/agents/{agent_id}/webhook" in webhook
    source_id = str(sources["team-slack"].id)
    assert event.startswith("event: runs on every slack.message from team-slack when channel is '#help'")
    assert event.endswith(f"{PUBLIC}{app.url_path_for('receive_event', source_id=source_id)}")


async def test_saving_a_draft_that_is_not_ready_says_not_saved_and_links_the_form(
    db, alpha, scripted_llm, ui
):
    session = session_for(db, alpha, scripted_llm)
    scripted_llm.script(
        [ToolCall("draft_spec", {"yaml": LIVE}), ToolCall("save_spec", {}), Text("Connect Slack first.")]
    )
    await session.send("Answer questions in #help", ui)
    (refused,) = answers(ui)["save_spec"]
    assert refused["saved"] is False
    reason = refused["not_saved_because"]
    assert "[open the connect form](/connect?type=slack&name=team-slack)" in reason
    assert "coherex sources" not in reason
    async with db.session(alpha.identity) as s:
        assert await s.agents.list(alpha.team_id) == []
    # the Save button of the chat says the same
    with pytest.raises(Exception, match="Not saved yet") as caught:
        await session.save()
    assert "/connect?type=slack&name=team-slack" in str(caught.value)


async def test_a_placeholder_default_is_asked_for_not_saved(db, alpha, scripted_llm, ui):
    await add_sources(db, alpha, {"acme-github": "github"})
    session = session_for(db, alpha, scripted_llm)
    scripted_llm.script(
        [
            ToolCall("draft_spec", {"yaml": TRIAGE}),
            ToolCall("save_spec", {}),  # a model in a hurry tries to save anyway
            Text("Which repository should it triage?"),
        ]
    )
    await session.send("Every morning, label the new issues of our repository", ui)
    drafted, refused = answers(ui)["draft_spec"][0], answers(ui)["save_spec"][0]
    assert drafted["valid"] is True  # shown, so the person sees what is missing
    (ask,) = drafted["ask_the_person"]
    assert ask.startswith("spec.inputs.repo.default: 'owner/repo' is a placeholder")
    assert refused["saved"] is False and "spec.inputs.repo.default" in refused["not_saved_because"]
    assert "the repository (owner/name)" in refused["not_saved_because"]  # what to ask for
    assert not session.draft.ready and session.agent is None
    # the repair message no longer forbids asking
    assert "ask the person" in _repair_prompt()


def _repair_prompt() -> str:
    from coherex.builder.session import PROMPTS

    return (PROMPTS / "builder_repair.md").read_text()


async def test_eval_case_asks_for_the_repository_and_saves_the_real_one(db, alpha, scripted_llm):
    """`coherex eval builder` on a case of the placeholder kind, the scripted model playing a capable one."""
    case = {
        "id": "triage-asks-repo",
        "request": "Every morning, label the new issues of our repository",
        "answers": ["acme/widgets"],
        "data_sources": {"acme-github": "github"},
        "expect": {"tools": ["github.list_issues", "github.add_labels"], "trigger": "schedule"},
    }
    scripted_llm.script(
        [
            ToolCall("draft_spec", {"yaml": TRIAGE}),
            Text("Which repository should it triage?"),
            ToolCall("update_spec", {"changes": {"spec": {"inputs": {"repo": {"default": "acme/widgets"}}}}}),
            ToolCall("save_spec", {}),
            Text("Saved: it labels acme/widgets every morning."),
        ]
    )
    result = await run_case(db, alpha.user_id, case, scripted_llm)
    assert result.error is None and result.turns == 2
    assert result.valid and result.failed == [] and result.matched == result.checks == 4
    # the same case when the model saves the placeholder without asking: refused, so not counted ready
    scripted_llm.reset()
    scripted_llm.script([ToolCall("draft_spec", {"yaml": TRIAGE}), ToolCall("save_spec", {}), Text("Saved.")])
    lazy = await run_case(db, alpha.user_id, {**case, "answers": []}, scripted_llm)
    assert lazy.valid and lazy.failed == []  # the platform refused the save: nothing leaked


async def test_what_a_source_knows_reaches_the_builder_and_the_template(db, alpha, scripted_llm, ui):
    async with db.session(alpha.identity) as s:
        await s.sources.create(alpha.team_id, "acme-github", "github", {"repo": "acme/api"})
    session = session_for(db, alpha, scripted_llm)
    scripted_llm.script(
        [
            ToolCall("list_data_sources", {}),
            ToolCall("use_template", {"name": "github-issue-triage"}),
            Text("It triages acme/api."),
        ]
    )
    await session.send("Triage our new GitHub issues", ui)
    (listed,) = answers(ui)["list_data_sources"]
    assert listed == [
        {"name": "acme-github", "type": "github", "status": "active", "knows": {"repo": "acme/api"}}
    ]
    (used,) = answers(ui)["use_template"]
    assert session.draft.spec.spec.inputs["repo"].default == "acme/api"  # not the template's example
    assert "input repo is 'acme/api', the repo of 'acme-github'" in used["bound_to_team"]


async def test_a_version_saved_before_the_event_inputs_check_still_loads_and_routes(db, alpha):
    """The check is an error at save; a stored version that fails it must not stop a team's events."""
    from coherex.services.triggers import route_event
    from coherex.spec import parse

    await add_sources(db, alpha, {"team-slack": "slack"})
    old = parse(LIVE, "yaml")
    old["metadata"] = {"name": "old-monitor"}
    old["spec"]["inputs"] = {"message": {"type": "object"}}  # what the slack template once had
    old["spec"]["instructions"] = "Answer it."
    old["spec"]["triggers"] = [old["spec"]["triggers"][2]]
    good = parse(LIVE, "yaml")
    good["spec"]["triggers"] = [good["spec"]["triggers"][2]]
    async with db.session(alpha.identity) as s:  # stored as they were, not through today's checks
        await s.agents.save_spec(alpha.team_id, old, "")
        await s.agents.save_spec(alpha.team_id, good, "")
    started = await route_event(
        db, alpha.team_id, "team-slack", "slack.message", {"channel": "#help", "text": "hi?"}, "ev-1"
    )
    async with db.session(alpha.identity) as s:
        names = {(await s.agents.get(e.agent_id)).name for e in started}
    assert names == {"help-desk"}  # the old one is skipped (its input is missing), as before
