"""Semantic checks: references to the team's data sources and collections, access, inputs."""

from __future__ import annotations

import pytest

from coherex.spec import (
    SpecInvalid,
    ToolInfo,
    diff_specs,
    get_tool,
    load_spec,
    render_instructions,
    validate,
)
from coherex.tools import registry
from coherex.tools.port import Provider, action
from tests.unit.spec.conftest import VALID

SOURCES = {"work-mail": "gmail", "team-slack": "slack", "ops-slack": "slack", "gh": "github"}


def messages(report) -> dict[str, str]:
    return {p.path: f"{p.message} ({p.hint})" for p in report.problems}


def test_references_are_checked_when_the_team_is_known():
    text = VALID.replace("dataSource: work-mail", "dataSource: old-mail").replace(
        "dataSource: team-slack", "dataSource: gh"
    )
    text = text.replace("  triggers:", "    - use: knowledge.search\n      collection: handbok\n  triggers:")
    report = validate(text, data_sources=SOURCES, collections={"handbook", "runbooks"})
    found = messages(report)
    assert "no data source named 'old-mail'" in found["spec.tools[0].dataSource"]
    assert "gmail data sources: work-mail" in found["spec.tools[0].dataSource"]
    assert (
        "'gh' is a github connection; slack.post_message needs a slack one"
        in found["spec.tools[1].dataSource"]
    )
    assert "ops-slack, team-slack" in found["spec.tools[1].dataSource"]
    assert "no knowledge collection named 'handbok'" in found["spec.tools[2].collection"]
    assert "handbook, runbooks" in found["spec.tools[2].collection"]


def test_references_are_not_checked_without_the_team():
    assert validate(VALID.replace("work-mail", "anything")).ok


def test_event_trigger_needs_a_data_source_of_the_emitting_type():
    text = VALID.replace(
        "    - schedule:\n        cron: 0 8 * * 1-5\n        timezone: Europe/Berlin\n",
        "    - event: {source: work-mail, type: slack.message}\n",
    )
    found = messages(validate(text, data_sources=SOURCES))
    assert "is a gmail connection; slack.message needs a slack one" in found["spec.triggers[0].event.source"]


def test_over_granting_is_a_warning_not_an_error():
    report = validate(VALID.replace("      access: read\n", "      access: write\n"))
    assert report.ok
    assert [w.path for w in report.warnings] == ["spec.tools[0].access"]


def test_write_tool_without_declared_access_is_an_error():
    report = validate(VALID.replace("      access: write\n", ""))
    assert "declares no access" in messages(report)["spec.tools[1].access"]


def test_fixed_arguments_are_checked_against_the_tool():
    text = VALID.replace("      access: write\n", "      access: write\n      with: {channnel: '#ops'}\n")
    found = messages(validate(text))
    assert "has no argument 'channnel'; did you mean 'channel'?" in found["spec.tools[1].with.channnel"]


def test_same_tool_twice_is_fine_with_distinct_names():
    twice = (
        "    - use: slack.post_message\n      name: post_alerts\n      dataSource: team-slack\n"
        "      access: write\n  triggers:"
    )
    assert validate(VALID.replace("  triggers:", twice)).ok


def test_placeholders_must_be_declared_inputs_and_are_rendered():
    text = VALID.replace("Summarise the unread mail.", "Summarise mail of {{ since }} for {{team}}.")
    assert "refers to input {{team}}" in messages(validate(text))["spec.instructions"]
    text = text.replace(
        "  tools:",
        "  inputs:\n    since: {type: string, default: 1d}\n    team: {type: string, default: ops}\n  tools:",
    )
    spec = load_spec(text)
    assert render_instructions(spec, {"team": "sales"}) == "Summarise mail of 1d for sales.\n"


def test_scheduled_agent_needs_defaults_for_its_inputs():
    text = VALID.replace("  tools:", "  inputs:\n    topic: {type: string}\n  tools:")
    assert "topic has no default" in messages(validate(text))["spec.triggers[0]"]


def test_trigger_has_exactly_one_kind():
    text = VALID.replace("    - schedule:", "    - webhook: {}\n      schedule:")
    assert "found schedule and webhook" in messages(validate(text))["spec.triggers[0]"]


def test_enum_and_default_must_agree():
    text = VALID.replace(
        "  tools:", "  inputs:\n    tone: {type: string, enum: [short, long], default: medium}\n  tools:"
    )
    assert "not one of enum" in messages(validate(text))["spec.inputs.tone.default"]


def test_load_spec_raises_a_user_error_listing_the_problems():
    with pytest.raises(SpecInvalid) as info:
        load_spec(VALID.replace("access: write", "access: read"))
    assert "spec.tools[1].access" in str(info.value)
    assert info.value.report.errors


def test_the_catalogue_is_the_union_of_the_registered_providers():
    jira = ToolInfo("jira.create_ticket", "jira", "Open a ticket.", access="write", needs_data_source=True)

    @action(jira)
    async def create_ticket(call, args):
        return {}

    text = VALID.replace("use: slack.post_message", "use: jira.create_ticket")
    assert not validate(text).ok
    with registry.use([*registry.BUILTIN, Provider("jira", (create_ticket,))]):
        assert validate(text).ok and get_tool("jira.create_ticket") is jira
    assert not validate(text).ok and get_tool("jira.create_ticket") is None
    with registry.use([p for p in registry.BUILTIN if p.name != "slack"]):  # a provider taken out
        assert "unknown tool 'slack.post_message'" in str(validate(VALID).problems)


def test_catalogue_is_complete_and_gives_llm_schemas():
    required = [
        "python",
        "knowledge.search",
        "gmail.search_messages",
        "gmail.read_message",
        "gmail.send_message",
        "gmail.add_label",
        "gmail.read_thread",
        "gmail.create_draft",
        "slack.read_channel",
        "slack.post_message",
        "slack.reply_in_thread",
        "slack.list_channels",
        "github.list_issues",
        "github.read_issue",
        "github.create_issue",
        "github.comment_issue",
        "github.add_labels",
        "github.list_pull_requests",
        "github.read_pull_request_diff",
        "github.list_commits",
        "http.request",
        "postgres.query",
    ]
    for name in required:
        info = get_tool(name)
        assert info is not None and info.description and info.parameters["type"] == "object", name
    schema = get_tool("slack.post_message").llm_parameters({"channel": "#ops"})
    assert list(schema["properties"]) == ["text"] and schema["required"] == ["text"]


def test_diff_of_two_versions_shows_the_change():
    old, new = VALID, VALID.replace("maxSteps: 20", "maxSteps: 40")
    diff = diff_specs(old, new, "inbox-digest v1", "inbox-digest v2")
    assert "--- inbox-digest v1" in diff and "+++ inbox-digest v2" in diff
    assert "-    maxSteps: 20" in diff and "+    maxSteps: 40" in diff
    assert diff_specs(old, old) == ""


def test_knowledge_search_without_a_collection_is_refused_when_validated():
    """Not at run time ("There is no collection None"): the spec names what it searches."""
    from coherex.spec import validate

    report = validate(
        {
            "apiVersion": "coherex/v1",
            "kind": "Agent",
            "metadata": {"name": "qa"},
            "spec": {"instructions": "Answer from the handbook.", "tools": [{"use": "knowledge.search"}]},
        },
        collections={"handbook"},
    )
    [problem] = report.errors
    assert problem.path == "spec.tools[0].collection" and "needs a collection" in problem.message
    assert "handbook" in str(problem)
