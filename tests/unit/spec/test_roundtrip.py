"""Specs survive YAML/JSON -> model -> YAML/JSON unchanged; every template is valid."""

from __future__ import annotations

import json

import pytest

from coherex.spec import load_spec, parse, to_data, to_json, to_yaml, validate
from coherex.spec.templates import TEMPLATES_DIR, get_template, list_templates

TEMPLATES = sorted(p.name for p in TEMPLATES_DIR.glob("*.yaml"))

DESIGN_EXAMPLE = """\
apiVersion: coherex/v1
kind: Agent
metadata:
  name: inbox-digest            # DNS-label style, unique per team
  description: Summarise unread mail each morning and post it to Slack
  labels: {team: ops}
spec:
  model: {name: gpt-4o-mini, temperature: 0.2}
  instructions: |
    Read the unread mail of the last day, group it by sender, ...
  inputs:                        # parameters of a run, JSON-Schema typed
    since: {type: string, default: 24h}
  tools:
    - use: gmail.search_messages
      dataSource: work-mail      # a centrally managed data source, by name
      access: read
    - use: slack.post_message
      dataSource: team-slack
      access: write
      with: {channel: "#ops"}
    - use: knowledge.search
      collection: handbook
    - use: python                # code runs in the sandbox
  triggers:
    - schedule: {cron: "0 8 * * 1-5", timezone: Europe/Berlin}
    - webhook: {}
  limits: {maxSteps: 20, timeoutSeconds: 300, maxCostUsd: 0.50}
  runtime: {packages: [pandas]}
"""


def test_there_are_at_least_six_templates():
    assert len(TEMPLATES) >= 6


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_valid_and_round_trips_byte_for_byte(name: str):
    text = (TEMPLATES_DIR / name).read_text()
    report = validate(text)
    assert report.ok, [str(p) for p in report.problems]
    assert not report.warnings
    assert to_yaml(report.spec) == text
    as_json = to_json(report.spec)
    assert to_json(load_spec(as_json)) == as_json
    assert json.loads(as_json) == parse(text)


def test_the_design_example_is_valid_and_loses_nothing():
    spec = load_spec(DESIGN_EXAMPLE)
    assert to_data(spec) == parse(DESIGN_EXAMPLE)  # same content, comments aside
    assert to_yaml(load_spec(to_yaml(spec))) == to_yaml(spec)
    assert spec.spec.tools[1].with_ == {"channel": "#ops"}
    assert spec.spec.limits.maxCostUsd == 0.5


def test_key_order_of_free_mappings_is_kept_and_unset_defaults_are_not_written():
    spec = load_spec(DESIGN_EXAMPLE.replace("labels: {team: ops}", "labels: {zeta: '1', alpha: '2'}"))
    text = to_yaml(spec)
    assert text.index("zeta") < text.index("alpha")
    assert "network" not in text and "temperature: 0.2" in text


def test_yaml_surprises_are_avoided():
    """YAML 1.1 would turn NO into false and dates into datetimes; files mean what they say."""
    spec = load_spec(
        DESIGN_EXAMPLE.replace("labels: {team: ops}", "labels: {country: NO, since: 2024-01-01}")
    )
    assert spec.metadata.labels == {"country": "NO", "since": "2024-01-01"}
    assert "country: 'NO'" in to_yaml(spec)


def test_templates_are_listed_and_shown_by_name():
    names = [t.name for t in list_templates()]
    assert {
        "email-digest",
        "slack-channel-monitor",
        "csv-analysis",
        "github-issue-triage",
        "knowledge-qa",
        "incident-webhook",
    } <= set(names)
    assert all(t.description for t in list_templates())
    assert "gmail.search_messages" in get_template("email-digest").text()
