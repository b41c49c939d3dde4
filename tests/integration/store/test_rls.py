"""Team isolation is enforced by Postgres itself: a user of team A, connected as the application
role, cannot see, change or delete any row of team B — in every tenant table, with raw SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import pytest

from coherex.errors import PermissionDenied
from coherex.store.db import Database, Identity


async def _tenant_tables(db: Database, kind: str = "BASE TABLE") -> list[str]:
    """Every table (or view) of the public schema with a team_id column: new ones are covered too."""
    async with db.connection(Identity.system()) as conn:
        rows = await (
            await conn.execute(
                "select c.table_name from information_schema.columns c join information_schema.tables t "
                "on t.table_schema = c.table_schema and t.table_name = c.table_name "
                "where c.table_schema = 'public' and c.column_name = 'team_id' and t.table_type = %s "
                "order by c.table_name",
                (kind,),
            )
        ).fetchall()
    return [r[0] for r in rows]


async def _seed_everything(db: Database, team_id, user_id) -> None:
    """One row in every tenant table for the team."""
    async with db.session(Identity.user(user_id)) as s:
        saved = await s.agents.save_spec(
            team_id, {"metadata": {"name": "agent-x"}}, "metadata: {name: agent-x}\n"
        )
        src = await s.sources.create(
            team_id,
            "src-x",
            "http_api",
            {"base_url": "https://example.com"},
            credentials_encrypted="ciphertext",
            credentials_key_id="k1",
        )
        await s.agents.set_data_sources(saved.agent, [(src.id, "read")])
        ex = await s.executions.create(team_id, saved.agent.id, saved.version.version)
        await s.executions.add_event(ex, "log", payload={"msg": "hello"})
        await s.executions.add_event(
            ex, "llm_call", name="gpt-4o-mini", tokens_in=10, tokens_out=2, cost_usd=0.001
        )
        coll = await s.knowledge.create_collection(team_id, "handbook")
        doc, _ = await s.knowledge.add_document(
            coll, source="a.txt", title="A", mime_type="text/plain", content_hash="h1", size_bytes=3
        )
        await s.knowledge.add_chunks(doc, [("some text", "c1", {}, [0.1] * 384)])
        await s.api_keys.create(team_id, "ci")
        await s.invitations.create(team_id, "invitee@example.com", "member")
        await s.audit.record(team_id, "agent.create", target_type="agent", target_id=str(saved.agent.id))
        await s.uploads.create(team_id, "handbook", "queued.txt", b"waiting for a worker")
        await s.syncs.upsert(team_id, "src-x", "handbook", {"channel": "general"}, 60)
        await s.triggers.replace_schedules(
            saved.agent.id, team_id, [(0, "0 8 * * *", "UTC", datetime.now(UTC))]
        )
        thread, step = uuid4(), uuid4()
        await s.threads.upsert(thread, team_id, name="a chat", metadata={"draft": {}})
        await s.threads.upsert_step(thread, step, type="user_message", name="me", data={"output": "hi"})
        await s.threads.upsert_element(
            thread, uuid4(), data={"name": "spec.yaml"}, content=b"kind: Agent", for_id=step
        )
        await s.threads.upsert_feedback(step, 1)
        await s.conn.execute(
            "insert into public.registry_credentials (team_id, registry, username, secret_encrypted, "
            "key_id) values (%s, 'ghcr.io', 'me', 'ciphertext', 'k1')",
            (team_id,),
        )
        await s.conn.execute(
            "insert into public.team_signing_keys (team_id, name, public_key) values "
            "(%s, 'release', '-----BEGIN PUBLIC KEY-----x')",
            (team_id,),
        )
    async with db.session(Identity.system()) as s:  # written only by the platform (webhook receiver)
        await s.triggers.record_delivery(saved.agent.id, team_id, "delivery-1")
        await s.approvals.add(
            ex,
            step=0,
            tool_call_id="call-1",
            tool_name="slack_post_message",
            tool_use="slack.post_message",
            arguments={"text": "hi"},
            reason="",
            timeout_seconds=60,
            on_timeout="reject",
        )


async def test_every_tenant_table_has_rls_enabled(db: Database):
    tables = await _tenant_tables(db)
    assert {
        "agents",
        "agent_executions",
        "execution_events",
        "knowledge_chunks",
        "data_sources",
        "api_keys",
        "audit_log",
        "usage",
        "team_members",
    } <= set(tables)
    async with db.connection(Identity.system()) as conn:
        rows = await (
            await conn.execute(
                "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                "where n.nspname = 'public' and relkind = 'r' and not relrowsecurity"
            )
        ).fetchall()
    assert [r[0] for r in rows] == [], "tables without row-level security"


async def test_team_a_cannot_read_change_or_delete_team_b_rows(db: Database, two_teams):
    alpha, bravo = two_teams
    await _seed_everything(db, alpha.team_id, alpha.user_id)
    await _seed_everything(db, bravo.team_id, bravo.user_id)
    tables = await _tenant_tables(db)

    for table in tables:
        # the owner of bravo sees its own rows — so the seeding really reached every table
        async with db.connection(bravo.identity) as conn:
            own = (
                await (
                    await conn.execute(
                        f"select count(*) from public.{table} where team_id = %s", (bravo.team_id,)
                    )
                ).fetchone()
            )[0]
        assert own >= 1, f"{table}: seeding left no row to attack"

        async with db.connection(alpha.identity) as conn:
            seen = (
                await (
                    await conn.execute(
                        f"select count(*) from public.{table} where team_id = %s", (bravo.team_id,)
                    )
                ).fetchone()
            )[0]
            assert seen == 0, f"{table}: alpha sees {seen} of bravo's rows"
            if table != "data_sources":  # SELECT * on data_sources is refused outright (credentials column)
                rows = await (await conn.execute(f"select * from public.{table}")).fetchall()
                assert all(str(bravo.team_id) not in repr(r) for r in rows), f"{table}: leaked via select *"

        for stmt in (
            f"update public.{table} set team_id = team_id where team_id = %s",
            f"delete from public.{table} where team_id = %s",
        ):
            try:
                async with db.connection(alpha.identity) as conn:
                    cur = await conn.execute(stmt, (bravo.team_id,))
                    assert cur.rowcount == 0, f"{table}: alpha changed bravo's rows with {stmt!r}"
            except PermissionDenied:
                pass  # refused outright (audit_log, usage): also fine

    # views (dashboard aggregates) apply the same policies: security_invoker
    for view in await _tenant_tables(db, "VIEW"):
        async with db.connection(alpha.identity) as conn:
            seen = (
                await (
                    await conn.execute(
                        f"select count(*) from public.{view} where team_id = %s", (bravo.team_id,)
                    )
                ).fetchone()
            )[0]
        assert seen == 0, f"view {view}: alpha sees {seen} of bravo's rows"

    # and nothing of bravo's was lost
    for table in tables:
        async with db.connection(bravo.identity) as conn:
            own = (
                await (
                    await conn.execute(
                        f"select count(*) from public.{table} where team_id = %s", (bravo.team_id,)
                    )
                ).fetchone()
            )[0]
        assert own >= 1, f"{table}: bravo lost rows"


async def test_cannot_insert_into_another_team(db: Database, two_teams):
    alpha, bravo = two_teams
    with pytest.raises(PermissionDenied):
        async with db.session(alpha.identity) as s:
            await s.agents.save_spec(bravo.team_id, {"metadata": {"name": "intruder"}}, "")
    with pytest.raises(PermissionDenied):
        async with db.session(alpha.identity) as s:
            await s.members.add(bravo.team_id, alpha.user_id, "owner")


async def test_credentials_ciphertext_is_not_readable_by_users(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        src = await s.sources.create(
            alpha.team_id, "mail", "gmail", {}, credentials_encrypted="secret-blob", credentials_key_id="k1"
        )
    with pytest.raises(PermissionDenied):
        async with db.session(alpha.identity) as s:
            await s.sources.credentials(src.id)
    async with db.session(Identity.system()) as s:
        assert await s.sources.credentials(src.id) == ("secret-blob", "k1")


async def test_viewer_can_read_but_not_write(db: Database, two_teams, tenant_factory):
    alpha, _ = two_teams
    viewer = await tenant_factory("charlie")
    async with db.session(alpha.identity) as s:
        await s.members.add(alpha.team_id, viewer.user_id, "viewer")
        await s.agents.save_spec(alpha.team_id, {"metadata": {"name": "shared"}}, "")
    async with db.session(viewer.identity) as s:
        assert [a.name for a in await s.agents.list(alpha.team_id)] == ["shared"]
    with pytest.raises(PermissionDenied):
        async with db.session(viewer.identity) as s:
            await s.agents.save_spec(alpha.team_id, {"metadata": {"name": "nope"}}, "")


async def test_api_key_identity_is_narrowed_to_its_team(db: Database, two_teams):
    alpha, bravo = two_teams
    # alpha's user also joins bravo, but a key made for alpha's team must not reach bravo
    async with db.session(bravo.identity) as s:
        await s.members.add(bravo.team_id, alpha.user_id, "member")
        await s.agents.save_spec(bravo.team_id, {"metadata": {"name": "bravo-agent"}}, "")
    async with db.session(Identity.user(alpha.user_id)) as s:
        assert [a.name for a in await s.agents.list(bravo.team_id)] == ["bravo-agent"]
    async with db.session(Identity.user(alpha.user_id, team_id=alpha.team_id)) as s:
        assert await s.agents.list(bravo.team_id) == []


async def test_audit_log_is_append_only(db: Database, two_teams):
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        await s.audit.record(alpha.team_id, "login")
        before = [
            e.action for e in await s.audit.list(alpha.team_id)
        ]  # with the team's creation (member.add)
    for stmt in ("update public.audit_log set action = 'forged'", "delete from public.audit_log"):
        with pytest.raises(PermissionDenied):
            async with db.connection(alpha.identity) as conn:
                await conn.execute(stmt)
        with pytest.raises((PermissionDenied, psycopg.Error)):
            async with db.connection(Identity.system()) as conn:
                await conn.execute(stmt)
    async with db.session(alpha.identity) as s:
        assert [e.action for e in await s.audit.list(alpha.team_id)] == before
        assert "login" in before
