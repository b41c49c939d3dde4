"""The offline builder's choice by meaning (the real MiniLM embeddings, no model): which template or
tools a request gets, and where Slack channels go."""

from __future__ import annotations

import pytest

from coherex.builder.offline import channels, choose, compose
from coherex.spec.templates import list_templates


@pytest.mark.parametrize(
    "request_, template",
    [
        ("summarise the CSV of sales I upload and tell me which region dropped", "csv-analysis"),
        ("What is our refund policy?", "knowledge-qa"),
        (
            "Label new GitHub issues in acme/widgets and ask reporters for missing details.",
            "github-issue-triage",
        ),
        (
            "When someone asks a question in #help on Slack, answer in the thread from the handbook.",
            "slack-channel-monitor",
        ),
        (
            "Every weekday at 8, summarise my unread email and post the digest to #ops on Slack.",
            "email-digest",
        ),
    ],
)
def test_requests_get_their_template(request_, template):
    chosen = choose(request_).template
    assert chosen is not None and chosen.template.name == template


def test_every_starter_gets_its_own_template():
    """The chat's starters send each template's description."""
    for t in list_templates():
        chosen = choose(t.description).template
        assert chosen is not None and chosen.template.name == t.name


@pytest.mark.parametrize(
    "request_, tools",
    [
        (
            "post a digest of #support to #ops every weekday at 9",
            ["slack.read_channel", "slack.post_message"],
        ),
        (
            "Every hour, find newsletters in my mailbox and label them 'newsletter'.",
            ["gmail.search_messages", "gmail.add_label"],
        ),
        ("Compute compound interest for an amount, rate and years I give", ["python"]),
    ],
)
def test_requests_no_template_covers_get_their_tools(request_, tools):
    choice = choose(request_)
    assert choice.template is None and set(tools) <= set(choice.tools)


def test_a_template_that_would_write_elsewhere_is_not_taken():
    """The mail digest posts to Slack: a read-only mail question must not get it."""
    choice = choose(
        "Tell me, when I ask, how many unread emails I have from my manager. Don't change anything."
    )
    assert choice.template is None and choice.tools == ["gmail.search_messages"]
    digest = next(r for r in choice.ranked if r[0].template.name == "email-digest")
    assert not digest[2] and "post a message" in digest[3]


def test_channels_are_read_from_or_posted_to():
    assert channels("post a digest of #support to #ops") == [("#support", "read"), ("#ops", "write")]
    assert channels("summarise what was discussed in #product and post it in #product") == [
        ("#product", "read"),
        ("#product", "write"),
    ]


def test_compose_asks_for_the_inputs_the_request_names():
    spec = compose("Compute compound interest for an amount, rate and years I give", ["python"])
    assert set(spec["spec"]["inputs"]) == {"amount", "rate", "years"}
    assert spec["spec"]["inputs"]["rate"]["type"] == "number"
