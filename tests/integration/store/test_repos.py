"""Each repository round-trips what it stores."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from coherex.errors import Conflict, NotFound
from coherex.store.db import Database, Identity, Listener


async def test_users_and_login(db: Database):
    async with db.session(Identity.system()) as s:
        u = await s.users.create("Ada@Example.com", display_name="Ada", password="s3cret-pass")
        assert u.email == "ada@example.com"
        assert (await s.users.authenticate("ada@example.com", "s3cret-pass")).id == u.id
        assert await s.users.authenticate("ada@example.com", "wrong-pass") is None
        assert await s.users.authenticate("nobody@example.com", "s3cret-pass") is None
    with pytest.raises(Conflict, match="email"):
        async with db.session(Identity.system()) as s:
            await s.users.create("ada@example.com")


async def test_teams_and_members(db: Database, two_teams, tenant_factory):
    alpha, _ = two_teams
    dave = await tenant_factory("dave")
    async with db.session(alpha.identity) as s:
        assert [t.slug for t in await s.teams.list()] == ["alpha"]
        await s.members.add(alpha.team_id, dave.user_id, "member")
        members = await s.members.list(alpha.team_id)
        assert {(m.email, m.role) for m in members} == {
            ("alpha@example.com", "owner"),
            ("dave@example.com", "member"),
        }
        team = await s.teams.set_quotas(
            alpha.team_id, executions_month=100, cost_month_usd=5.5, max_concurrent_runs=2
        )
        assert (team.quota_executions_month, float(team.quota_cost_month_usd), team.max_concurrent_runs) == (
            100,
            5.5,
            2,
        )
    async with db.session(dave.identity) as s:
        assert {t.slug for t in await s.teams.list()} == {"alpha", "dave"}


async def test_agent_versions(db: Database, two_teams):
    alpha, _ = two_teams
    spec1 = {"apiVersion": "coherex/v1", "metadata": {"name": "digest", "description": "one"}}
    spec2 = {"apiVersion": "coherex/v1", "metadata": {"name": "digest", "description": "two"}}
    async with db.session(alpha.identity) as s:
        first = await s.agents.save_spec(alpha.team_id, spec1, "v1 yaml")
        assert (first.created_agent, first.created_version, first.version.version) == (True, True, 1)
        same = await s.agents.save_spec(alpha.team_id, dict(spec1), "v1 yaml again")
        assert (same.created_version, same.version.version) == (False, 1)
        second = await s.agents.save_spec(alpha.team_id, spec2, "v2 yaml", message="reword")
        assert (second.created_agent, second.version.version, second.agent.description) == (False, 2, "two")
        versions = await s.agents.versions(second.agent.id)
        assert [(v.version, v.spec["metadata"]["description"]) for v in versions] == [(1, "one"), (2, "two")]
        assert (await s.agents.get_version(second.agent.id)).version == 2
        assert (await s.agents.require_version(second.agent, 1)).spec_yaml == "v1 yaml"
        with pytest.raises(NotFound, match="versions 1 to 2"):
            await s.agents.require_version(second.agent, 7)


async def test_executions_events_and_usage(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        saved = await s.agents.save_spec(alpha.team_id, {"metadata": {"name": "runner"}}, "")
        ex = await s.executions.create(
            alpha.team_id, saved.agent.id, 1, trigger="api", inputs={"since": "24h"}
        )
        assert ex.status == "pending" and ex.inputs == {"since": "24h"}
        running = await s.executions.start(ex.id, worker_id="w1")
        assert running.status == "running" and running.attempts == 1
        assert await s.executions.start(ex.id, worker_id="w2") is None  # never taken twice
        e1 = await s.executions.add_event(
            running, "llm_call", name="gpt", tokens_in=10, tokens_out=5, cost_usd=0.001
        )
        e2 = await s.executions.add_event(
            running, "tool_call", name="python", parent_seq=e1.seq, payload={"code": "1+1"}
        )
        assert (e1.seq, e2.seq) == (1, 2)
        done = await s.executions.finish(
            ex.id, "completed", output={"answer": 2}, tokens_in=10, tokens_out=5, cost_usd=0.001
        )
        assert done.status == "completed" and done.output == {"answer": 2} and done.duration_ms >= 0
        assert await s.executions.finish(ex.id, "failed", error="late") is None  # final states are final
        events = await s.executions.events(ex.id)
        assert [(e.seq, e.type, e.payload) for e in events] == [
            (1, "llm_call", {}),
            (2, "tool_call", {"code": "1+1"}),
        ]
        usage = await s.audit.usage(alpha.team_id, date.today())
        assert (usage.executions, usage.tokens, float(usage.cost_usd)) == (1, 15, 0.001)


async def test_cancel_pending_execution_is_immediate(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        saved = await s.agents.save_spec(alpha.team_id, {"metadata": {"name": "c"}}, "")
        ex = await s.executions.create(alpha.team_id, saved.agent.id, 1)
        cancelled = await s.executions.request_cancel(ex.id)
        assert cancelled.status == "cancelled" and cancelled.cancel_requested


async def test_data_sources_health(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        src = await s.sources.create(alpha.team_id, "team-slack", "slack", {"workspace": "acme"})
        failing = await s.sources.record_check(src.id, ok=False, error="token revoked")
        assert failing.status == "failing" and failing.last_error == "token revoked" and failing.failing_since
        again = await s.sources.record_check(src.id, ok=False, error="still revoked")
        assert again.failing_since == failing.failing_since
        ok = await s.sources.record_check(src.id, ok=True)
        assert ok.status == "active" and ok.last_error is None and ok.failing_since is None
        assert await s.sources.names_and_types(alpha.team_id) == {"team-slack": "slack"}


async def test_knowledge_documents_dedupe(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        coll = await s.knowledge.create_collection(alpha.team_id, "handbook")
        doc, created = await s.knowledge.add_document(
            coll, source="a.md", title="A", mime_type="text/markdown", content_hash="abc", size_bytes=10
        )
        again, created_again = await s.knowledge.add_document(
            coll, source="copy.md", title="A", mime_type="text/markdown", content_hash="abc", size_bytes=10
        )
        assert created and not created_again and again.id == doc.id
        await s.knowledge.add_chunks(
            doc, [("alpha text", "h1", {"section": "1"}, [0.0] * 383 + [1.0]), ("beta text", "h2", {}, None)]
        )
        await s.knowledge.set_document_status(doc.id, "ready")
        assert [c.content for c in await s.knowledge.chunks(doc.id)] == ["alpha text", "beta text"]
        assert (await s.knowledge.list_documents(coll.id))[0].chunk_count == 2


async def test_api_keys_hashed_and_revocable(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        record, key = await s.api_keys.create(alpha.team_id, "ci")
        assert key.startswith("cx_") and record.prefix == key[:10]
    async with db.connection(Identity.system()) as conn:
        stored = (await (await conn.execute("select key_hash from public.api_keys")).fetchone())[0]
    assert key not in stored
    async with db.session(Identity.system()) as s:
        assert (await s.api_keys.resolve(key)).team_id == alpha.team_id
        assert await s.api_keys.resolve(key + "x") is None
    async with db.session(alpha.identity) as s:
        assert await s.api_keys.revoke(record.id)
    async with db.session(Identity.system()) as s:
        assert await s.api_keys.resolve(key) is None


async def test_notify_arrives_on_status_change(db: Database, db_urls, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        saved = await s.agents.save_spec(alpha.team_id, {"metadata": {"name": "n"}}, "")
        ex = await s.executions.create(alpha.team_id, saved.agent.id, 1)

    async with Listener(db_urls.app, "coherex_executions", "coherex_events") as listener:
        async with db.session(alpha.identity) as s:
            running = await s.executions.start(ex.id, worker_id="w")
            await s.executions.add_event(running, "log", payload={"line": "hi"})
        notes = aiter(listener)
        received = [await asyncio.wait_for(anext(notes), 5), await asyncio.wait_for(anext(notes), 5)]
    assert received[0] == (
        "coherex_executions",
        {
            "id": str(ex.id),
            "team_id": str(alpha.team_id),
            "agent_id": str(saved.agent.id),
            "status": "running",
            "cancel_requested": False,
        },
    )
    assert received[1][0] == "coherex_events" and received[1][1]["seq"] == 1
