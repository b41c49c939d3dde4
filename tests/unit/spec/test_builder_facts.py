"""What the builder is told and checked with (issue 17, items 8-11): the spec reference in its
prompt, event runs' inputs, values cut by a `#`, placeholder values."""

from __future__ import annotations

import re

import pytest

from coherex import resources
from coherex.builder.evaluate import check
from coherex.spec import load_spec, parse, placeholders, to_yaml, validate
from coherex.spec.documents import dump_yaml
from coherex.spec.models import Event, InputSpec, Limits, Schedule, ToolRef, Trigger, Webhook

REFERENCE = (resources.path("prompts") / "spec_reference.md").read_text()


def spec(inputs: str = "", triggers: str = "", tools: str = "    - use: python\n") -> str:
    return (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata:\n  name: watcher\n"
        "spec:\n  instructions: Do the task.\n"
        + (f"  inputs:\n{inputs}" if inputs else "")
        + f"  tools:\n{tools}"
        + (f"  triggers:\n{triggers}" if triggers else "")
    )


# ---------------------------------------------------------------- the reference in the prompt
def test_every_example_of_the_spec_reference_validates():
    examples = re.findall(r"```yaml\n(.*?)```", REFERENCE, re.S)
    assert len(examples) >= 2
    for example in examples:
        report = validate(example)
        assert report.ok and report.problems == [], [str(p) for p in report.problems]


def test_the_reference_names_every_field_a_spec_has():
    """Generated from nothing, so it is checked against the models: a new field must be described."""
    fields = {
        f.alias or name
        for model in (InputSpec, ToolRef, Schedule, Webhook, Event, Trigger, Limits)
        for name, f in model.model_fields.items()
    } - {"version", "agent"}  # sub-agents: `list_tools` describes `use: agent`
    missing = sorted(f for f in fields if f"`{f}" not in REFERENCE and f"{f}:" not in REFERENCE)
    assert missing == []


# ---------------------------------------------------------------- event runs' inputs
def test_a_required_input_an_event_does_not_supply_is_an_error_naming_it_and_the_trigger():
    text = spec(
        inputs="    repo: {type: string}\n", triggers="    - event: {source: gh, type: github.issue_opened}\n"
    )
    report = validate(text, data_sources={"gh": "github"})  # as a save checks it
    (problem,) = report.errors
    assert problem.path == "spec.triggers[0]"
    assert "github.issue_opened" in problem.message and "repo" in problem.message
    assert "default" in problem.hint and "event" in problem.hint
    # a version stored before this check still loads to run (its event runs are skipped, as before)
    stored = validate(text)
    assert stored.ok and [p.message for p in stored.warnings] == [problem.message]


@pytest.mark.parametrize(
    "inputs",
    [
        "    event: {type: object}\n",  # the whole payload
        "    text: {type: string}\n    channel: {type: string}\n",  # the Slack event's fields
        "    repo: {type: string, default: acme/widgets}\n",
    ],
)
def test_inputs_the_event_supplies_or_that_have_a_default_pass(inputs):
    report = validate(
        spec(
            inputs=inputs,
            triggers="    - event: {source: s, type: slack.message, filter: {channel: '#help'}}\n",
        ),
        data_sources={"s": "slack"},
    )
    assert report.ok and report.problems == [], [str(p) for p in report.problems]


def test_an_event_input_means_only_the_whole_event_arrives():
    """route_event gives {event: payload} when `event` is declared: no field fills `text` then."""
    report = validate(
        spec(
            inputs="    event: {type: object}\n    text: {type: string}\n",
            triggers="    - event: {source: s, type: slack.message}\n",
        ),
        data_sources={"s": "slack"},
    )
    assert [p.path for p in report.errors] == ["spec.triggers[0]"] and "text" in report.errors[0].message


# ---------------------------------------------------------------- a `#` that cuts a value
def test_an_unquoted_hash_word_that_cuts_a_description_is_a_warning_naming_the_line():
    text = spec().replace("  name: watcher\n", "  name: watcher\n  description: Post to #sales daily\n")
    report = validate(text)
    assert report.ok and report.spec.metadata.description == "Post to"
    (warning,) = report.warnings
    assert warning.path == "metadata.description" and "line 5" in warning.message
    assert "'Post to'" in warning.message and "quotes" in warning.hint


def test_quoted_values_and_real_comments_are_not_reported():
    text = spec(triggers="    - schedule: {cron: 0 8 * * 1-5}  # weekdays\n").replace(
        "  name: watcher\n", "  name: watcher\n  description: 'Post to #sales daily'  # for sales\n"
    )
    assert validate(text).warnings == []
    assert validate(text.replace("# weekdays", "#weekdays")).warnings == []  # flow: not a plain value


def test_the_yaml_writer_quotes_values_with_a_hash():
    data = parse(spec(), "yaml")
    data["metadata"]["description"] = "Post to #sales daily"
    data["spec"]["tools"][0] = {
        "use": "slack.post_message",
        "dataSource": "s",
        "access": "write",
        "with": {"channel": "#sales"},
    }
    text = to_yaml(load_spec(data))
    assert parse(text, "yaml") == data and validate(text).warnings == []
    assert parse(dump_yaml({"a": "x #y"}), "yaml") == {"a": "x #y"}


# ---------------------------------------------------------------- placeholders
@pytest.mark.parametrize(
    "value", ["owner/repo", "your-org/your-repo", "sales@example.com", "your-channel", "TODO", "<repository>"]
)
def test_placeholder_defaults_are_warnings(value):
    report = validate(spec(inputs=f"    target: {{type: string, default: '{value}'}}\n"))
    assert report.ok  # valid, but not ready: the builder asks the person
    (warning,) = report.warnings
    assert warning.path == "spec.inputs.target.default" and "placeholder" in warning.message
    assert [p.path for p in placeholders(report.spec)] == ["spec.inputs.target.default"]


@pytest.mark.parametrize("value", ["acme/widgets", "ops@acme.io", "Summarise your inbox", "1d", "#ops"])
def test_real_values_are_not_placeholders(value):
    assert validate(spec(inputs=f"    target: {{type: string, default: '{value}'}}\n")).warnings == []


def test_a_placeholder_in_a_fixed_argument_is_found():
    tools = (
        "    - {use: slack.post_message, dataSource: s, access: write, with: {channel: '#your-channel'}}\n"
    )
    (found,) = placeholders(load_spec(spec(tools=tools)))
    assert found.path == "spec.tools[0].with.channel"


def test_eval_fails_a_case_whose_placeholder_was_saved_as_ready():
    drafted = load_spec(spec(inputs="    repo: {type: string, default: owner/repo}\n"))
    matched, failed = check(drafted, {}, ready=True)
    assert matched == 0 and len(failed) == 1 and "spec.inputs.repo.default" in failed[0]
    assert check(drafted, {}, ready=False) == (1, [])  # shown as not ready: the builder asks
    assert check(drafted, {}, saved=drafted)[1] != []  # saved anyway: fails
    fixed = load_spec(spec(inputs="    repo: {type: string, default: acme/widgets}\n"))
    assert check(fixed, {}, ready=True, saved=fixed) == (1, [])
