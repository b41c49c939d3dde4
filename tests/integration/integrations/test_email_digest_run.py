"""The email-digest template end to end: fake LLM + fake Gmail + fake Slack, through the real
runtime, integrations, vault and permission checks."""

from __future__ import annotations

import json
from pathlib import Path

from coherex.integrations.oauth import OAuthToken
from coherex.integrations.service import add_source
from coherex.llm.openai_client import OpenAIClient
from coherex.runtime import Runtime
from coherex.services.agents import apply_spec
from coherex.store.db import Identity
from coherex.testing.fake_openai import FakeOpenAI, Text, ToolCall

TEMPLATE = Path(__file__).resolve().parents[3] / "templates" / "email-digest.yaml"


async def test_email_digest_reads_mail_and_posts_one_summary(world):
    saas = world.saas
    first = saas.gmail.add_message(
        sender="ann@example.com", subject="Invoice 42", body="Please pay by Friday"
    )
    saas.gmail.add_message(sender="bob@example.com", subject="Lunch?", body="Tomorrow at noon")
    saas.slack.add_channel("ops")
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "gmail",
        "work-mail",
        credentials=OAuthToken(access_token=saas.gmail_token, refresh_token=saas.gmail_refresh_token),
    )
    await add_source(
        world.db,
        world.admin,
        world.team_id,
        "slack",
        "team-slack",
        credentials={"bot_token": saas.slack_token},
    )
    async with world.db.session(world.admin) as s:
        agent = (await apply_spec(s, world.team_id, TEMPLATE.read_text())).agent
        grants = {str(g.data_source_id): g.access for g in await s.agents.data_sources(agent.id)}
    assert sorted(grants.values()) == ["read", "write"]  # mail read-only, Slack may post

    digest = "Mail digest\n- Ann: invoice 42 to pay by Friday\n- Bob: lunch tomorrow"
    with FakeOpenAI() as llm_server:
        llm_server.script(
            [
                ToolCall("gmail_search_messages", {"query": "is:unread newer_than:1d"}),
                ToolCall("gmail_read_message", {"message_id": first}),
                ToolCall("slack_post_message", {"text": digest, "channel": "#random"}),  # the spec fixes #ops
                Text("Posted the digest with 2 messages."),
            ]
        )
        llm = OpenAIClient(api_key=llm_server.api_key, base_url=llm_server.base_url)
        runtime = Runtime(world.db, llm=llm)
        execution = await runtime.create(world.admin, world.team_id, agent, trigger="schedule")
        final = await runtime.run(execution.id)
        sent_to_llm = json.dumps([r.body for r in llm_server.chat_requests])

    assert final.status == "completed", final.error
    ops = next(c["id"] for c in saas.slack.channels if c["name"] == "ops")
    assert [m["text"] for m in saas.slack.messages[ops]] == [digest]  # exactly one post, in #ops
    async with world.db.session(Identity.system()) as s:
        events = await s.executions.events(execution.id)
        audit = await s.audit.list(world.team_id)
    calls = [e.name for e in events if e.type == "tool_call"]
    assert calls == ["gmail_search_messages", "gmail_read_message", "slack_post_message"]
    assert all(e.payload["ok"] for e in events if e.type == "tool_result")
    assert "Please pay by Friday" in sent_to_llm  # the model saw the mail it read
    assert any(a.action == "tool.slack.post_message" for a in audit)
    # no credential reached the model or the stored steps
    stored = json.dumps([e.payload for e in events])
    for secret in (saas.gmail_token, saas.gmail_refresh_token, saas.slack_token):
        assert secret not in stored and secret not in sent_to_llm
