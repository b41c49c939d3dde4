"""The builder on the offline model is a guided flow: a request becomes a draft from the right
template with its slots filled from the request and the team, short questions follow, and plain
edit requests change the draft — each turn in well under 5 s, with no language model call."""

from __future__ import annotations

from coherex.builder import BuilderSession


async def _team(db, tenant, sources=(), collections=()):
    async with db.session(tenant.identity) as s:
        for name, kind in sources:
            await s.sources.create(tenant.team_id, name, kind, {})
        for name in collections:
            await s.knowledge.get_or_create_collection(tenant.team_id, name, "test", 384)


def _offline(db, tenant):
    return BuilderSession(db, tenant.identity, tenant.team_id, team_name="Alpha", small_model=True)


def _tool(builder, use):
    return next(t for t in builder.draft.spec.spec.tools if t.use == use)


async def test_a_digest_request_fills_the_template_and_edits_apply(db, two_teams):
    alpha, _ = two_teams
    await _team(db, alpha, [("work-mail", "gmail"), ("team-slack", "slack")])
    builder = _offline(db, alpha)
    turn = await builder.send(
        "Every weekday at 8, summarise my unread email and post the digest to #ops on Slack."
    )
    assert turn.error is None and turn.llm_calls == 0 and turn.duration_ms < 5000
    assert builder.draft.spec.metadata.labels["template"] == "email-digest"
    assert "**email-digest** template" in turn.text and turn.text.rstrip().endswith("?")  # the time zone
    schedule = builder.draft.spec.spec.triggers[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 8 * * 1-5", "UTC")

    turn = await builder.send("Europe/Berlin")
    assert builder.draft.spec.spec.triggers[0].schedule.timezone == "Europe/Berlin"
    turn = await builder.send("use #sales instead")
    assert (
        _tool(builder, "slack.post_message").with_ == {"channel": "#sales"} and "posts to #sales" in turn.text
    )
    turn = await builder.send("run it every morning at 8")
    schedule = builder.draft.spec.spec.triggers[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 8 * * *", "Europe/Berlin")  # the zone stays
    turn = await builder.send("no schedule, I will run it on demand")
    assert not [t for t in builder.draft.spec.spec.triggers or [] if t.schedule]
    assert builder.unsaved and all(m["role"] != "tool" for m in builder.messages)


async def test_a_second_source_of_a_kind_is_asked_for_and_named_sources_are_used(db, two_teams):
    alpha, _ = two_teams
    await _team(db, alpha, [("work-mail", "gmail"), ("support-mail", "gmail")])
    builder = _offline(db, alpha)
    turn = await builder.send("Find newsletters in my mailbox and label them 'newsletter'.")
    assert "Which Gmail source should it use: support-mail, work-mail?" in turn.text
    await builder.send("support-mail")
    assert {t.dataSource for t in builder.draft.spec.spec.tools} == {"support-mail"}


async def test_a_question_gets_knowledge_qa_on_the_team_collection(db, two_teams):
    alpha, _ = two_teams
    await _team(db, alpha, collections=["policies"])
    builder = _offline(db, alpha)
    await builder.send("What is our refund policy?")
    spec = builder.draft.spec
    assert spec.metadata.labels["template"] == "knowledge-qa"
    assert _tool(builder, "knowledge.search").collection == "policies"
    assert spec.spec.inputs["question"].default == "What is our refund policy?"


async def test_an_unclear_message_changes_nothing_and_says_what_can_change(db, two_teams):
    alpha, _ = two_teams
    builder = _offline(db, alpha)
    await builder.send("Analyse a CSV file I upload and tell me what is unusual in it.")
    before = builder.draft.data
    turn = await builder.send("hmm, not sure")
    assert builder.draft.data == before and "I did not find a change" in turn.text
    # the person's state survives a resume (the chat keeps it in the thread)
    state = builder.state()
    again = _offline(db, alpha)
    await again.restore(state)
    assert again.draft.data == before


async def test_a_scheduled_agent_without_a_repository_asks_for_it_and_is_not_ready_until_given(db, two_teams):
    """No guess: the draft shows a marker that keeps it from ready, and the question is asked."""
    alpha, _ = two_teams
    await _team(db, alpha, [("acme-github", "github")])
    builder = _offline(db, alpha)
    turn = await builder.send("Every Friday at 16:00, list the week's closed GitHub issues.")
    assert builder.draft is not None and builder.draft.valid and not builder.draft.ready
    assert [p.path for p in builder.draft.placeholders] == ["spec.inputs.repo.default"]
    assert "Which GitHub repository should it work on (owner/name)?" in turn.text
    assert "Not ready to save yet" in turn.text
    await builder.send("acme/widgets")
    assert builder.draft.spec.spec.inputs["repo"].default == "acme/widgets" and builder.draft.ready
