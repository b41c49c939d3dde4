"""The chat's Chainlit data layer over real Postgres: a conversation written the way Chainlit writes
it comes back whole (sidebar list, resume), and nobody else — not even a teammate — can read it."""

from __future__ import annotations

import uuid

import chainlit as cl
import pytest
from chainlit.context import init_http_context
from chainlit.types import Feedback, Pagination, ThreadFilter

from coherex.chat import CoherexDataLayer
from coherex.chat.data_layer import TEAM_KEY
from coherex.store.db import Database, Identity


@pytest.fixture
def layer(db: Database) -> CoherexDataLayer:
    async def database() -> Database:
        return db

    return CoherexDataLayer(database)


async def _as(layer: CoherexDataLayer, tenant) -> cl.User:
    """A chat connection of `tenant` working in their team (what the chat sets up at login)."""
    user = await layer.get_user(tenant.email)
    assert user is not None and user.id == str(tenant.user_id)
    init_http_context(user=cl.User(identifier=user.identifier, metadata=user.metadata))
    cl.user_session.set(TEAM_KEY, str(tenant.team_id))
    return user


async def _conversation(layer: CoherexDataLayer, tenant) -> tuple[str, str]:
    await _as(layer, tenant)
    thread_id = str(uuid.uuid4())
    await layer.update_thread(
        thread_id, name="Every morning tell the team a fact", user_id=str(tenant.user_id)
    )
    question = cl.Message(content="Every morning tell the team a fact", author="User", type="user_message")
    question.thread_id = thread_id
    answer = cl.Message(content="Here is your agent.", author="Coherex")
    answer.thread_id = thread_id
    await layer.create_step(question.to_dict())
    await layer.create_step(answer.to_dict())
    run = cl.Step(name="run of daily-fact", type="run", parent_id=answer.id)
    run.thread_id, run.output = thread_id, "completed"
    await layer.create_step(run.to_dict())
    card = cl.Text(
        name="daily-fact.yaml",
        content="apiVersion: coherex/v1\nkind: Agent\n",
        language="yaml",
        display="inline",
        for_id=answer.id,
    )
    card.thread_id = thread_id
    await layer.create_element(card)
    stale = answer.to_dict()
    answer.content = "Here is your agent: it writes one fact."
    await layer.update_step(answer.to_dict())
    await layer.create_step(stale)  # Chainlit persists in background tasks: a late creation changes nothing
    await layer.update_thread(
        thread_id, metadata={"builder_state": {"draft": {"metadata": {"name": "daily-fact"}}}}
    )
    return thread_id, answer.id


async def test_a_conversation_round_trips_through_postgres(layer, two_teams):
    alpha, _ = two_teams
    thread_id, answer_id = await _conversation(layer, alpha)
    assert await layer.get_thread_author(thread_id) == alpha.email

    page = await layer.list_threads(Pagination(first=20), ThreadFilter(userId=str(alpha.user_id)))
    assert [t["id"] for t in page.data] == [thread_id]
    assert page.data[0]["name"] == "Every morning tell the team a fact"
    assert not page.pageInfo.hasNextPage

    thread = await layer.get_thread(thread_id)
    assert thread["userIdentifier"] == alpha.email
    assert [(s["type"], s["output"]) for s in thread["steps"]] == [
        ("user_message", "Every morning tell the team a fact"),
        ("assistant_message", "Here is your agent: it writes one fact."),  # the update replaced the text
        ("run", "completed"),
    ]
    assert thread["steps"][2]["parentId"] == answer_id
    assert thread["metadata"]["builder_state"]["draft"]["metadata"]["name"] == "daily-fact"
    [element] = thread["elements"]
    assert element["name"] == "daily-fact.yaml" and element["forId"] == answer_id
    assert element["url"].startswith("data:")  # the YAML card shows again without a file store

    # metadata merges (Chainlit writes its own keys at disconnect); sharing flags are never stored
    await layer.update_thread(thread_id, metadata={"chat_settings": {"team": "alpha"}, "is_shared": True})
    thread = await layer.get_thread(thread_id)
    assert "builder_state" in thread["metadata"] and "is_shared" not in thread["metadata"]

    feedback_id = await layer.upsert_feedback(Feedback(forId=answer_id, threadId=thread_id, value=1))
    assert [s.get("feedback", {}).get("value") for s in (await layer.get_thread(thread_id))["steps"]][1] == 1
    assert await layer.delete_feedback(feedback_id)

    await layer.delete_thread(thread_id)
    assert await layer.get_thread(thread_id) is None
    page = await layer.list_threads(Pagination(first=20), ThreadFilter(userId=str(alpha.user_id)))
    assert page.data == []


async def test_threads_are_private_even_within_a_team(db, layer, two_teams, tenant_factory):
    alpha, bravo = two_teams
    thread_id, answer_id = await _conversation(layer, alpha)
    teammate = await tenant_factory("charlie")
    async with db.session(alpha.identity) as s:
        await s.members.add(alpha.team_id, teammate.user_id, "admin")

    for other in (bravo, teammate):
        # through the repositories, under their own identity (row-level security)
        async with db.session(other.identity) as s:
            assert await s.threads.get(uuid.UUID(thread_id)) is None
            assert await s.threads.steps(uuid.UUID(thread_id)) == []
            assert await s.threads.list() == []
        # with raw SQL too
        async with db.connection(other.identity) as conn:
            for table in ("chat_threads", "chat_steps", "chat_elements"):
                count = (await (await conn.execute(f"select count(*) from public.{table}")).fetchone())[0]
                assert count == 0, f"{other.email} reads {table}"
        # the sidebar of the other person is empty
        page = await layer.list_threads(Pagination(first=20), ThreadFilter(userId=str(other.user_id)))
        assert page.data == []
        # and writing into alpha's thread from their chat does nothing
        await _as(layer, other)
        intruder = cl.Message(content="mine now", author="User", type="user_message")
        intruder.thread_id = thread_id
        await layer.create_step(intruder.to_dict())
        await layer.update_thread(thread_id, name="hijacked")
        async with db.session(other.identity) as s:
            assert await s.threads.delete(uuid.UUID(thread_id)) is False

    async with db.session(alpha.identity) as s:
        thread = await s.threads.get(uuid.UUID(thread_id))
        steps = await s.threads.steps(uuid.UUID(thread_id))
    assert thread.name == "Every morning tell the team a fact"
    assert [st.data["output"] for st in steps if st.type == "user_message"] == [
        "Every morning tell the team a fact"
    ]


async def test_a_thread_is_created_in_the_team_picked_in_the_chat(db, layer, two_teams):
    alpha, bravo = two_teams
    async with db.session(bravo.identity) as s:
        await s.members.add(bravo.team_id, alpha.user_id, "member")
    await _as(layer, alpha)
    cl.user_session.set(TEAM_KEY, str(bravo.team_id))  # picked in the chat settings
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, name="in bravo")
    async with db.session(Identity.system()) as s:
        assert (await s.threads.get(uuid.UUID(thread_id))).team_id == bravo.team_id
    # bravo's owner (another person) still cannot read it
    async with db.session(bravo.identity) as s:
        assert await s.threads.get(uuid.UUID(thread_id)) is None


async def test_a_first_message_sent_while_the_chat_connects_still_names_the_thread(layer, two_teams):
    """Chainlit names a thread at the first message; when that comes before the chat knew its team
    (the person typed while it was connecting), the name is kept until the thread is created."""
    alpha, _ = two_teams
    user = await layer.get_user(alpha.email)
    init_http_context(user=cl.User(identifier=user.identifier, metadata=user.metadata))  # no team yet
    thread_id = str(uuid.uuid4())
    await layer.update_thread(thread_id, name="What sold best last week?", user_id=str(alpha.user_id))
    assert await layer.get_thread(thread_id) is None  # nowhere to store it yet
    cl.user_session.set(TEAM_KEY, str(alpha.team_id))  # connected
    question = cl.Message(content="What sold best last week?", author="User", type="user_message")
    question.thread_id = thread_id
    await layer.create_step(question.to_dict())
    page = await layer.list_threads(Pagination(first=20), ThreadFilter(userId=str(alpha.user_id)))
    assert [(t["id"], t["name"]) for t in page.data] == [(thread_id, "What sold best last week?")]
