"""The permission matrix, cell by cell, enforced by Postgres: each statement is raw SQL run as the
application role under one person's identity (owner, admin, member, viewer, or an outsider from
another team). Python is not in the way: if a policy were missing, these statements would pass.

    action                                   owner admin member viewer outsider
    read agents / runs                        yes   yes   yes    yes    no
    create an agent, start a run              yes   yes   yes    no     no
    read data sources' metadata               yes   yes   yes    yes    no
    read credential ciphertext                no    no    no     no     no
    connect a data source                     yes   yes   no     no     no
    create an API key, invite, add members    yes   yes   no     no     no
    read the audit log                        yes   yes   no     no     no
    make someone owner                        yes   no    no     no     no
    change quotas (team and API key)          yes   no    no     no     no
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from coherex.errors import PermissionDenied, UserError
from coherex.store.db import Database, Identity

WHO = ("owner", "admin", "member", "viewer", "outsider")


async def attempt(db: Database, identity: Identity, sql: str, params=()) -> tuple[bool, list]:
    """(allowed, rows). Allowed means the statement ran AND touched/returned at least one row."""
    try:
        async with db.connection(identity) as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall() if cur.description else []
            return (cur.rowcount > 0 or bool(rows)), rows
    except (PermissionDenied, UserError, psycopg.errors.InsufficientPrivilege):
        return False, []


async def matrix(db, crew, sql, params_for=lambda role: ()) -> dict[str, bool]:
    return {role: (await attempt(db, crew.who(role), sql, params_for(role)))[0] for role in WHO}


def expect(*allowed: str) -> dict[str, bool]:
    return {role: role in allowed for role in WHO}


@pytest.fixture
async def seeded(db, crew):
    """An agent with a version and a run, a data source with ciphertext, an audit row."""
    async with db.session(crew.who("owner")) as s:
        saved = await s.agents.save_spec(
            crew.team_id, {"metadata": {"name": "shared"}}, "metadata: {name: shared}\n"
        )
        await s.sources.create(
            crew.team_id,
            "vault-src",
            "http_api",
            {"base_url": "https://example.com"},
            credentials_encrypted="CIPHERTEXT-SHOULD-NOT-LEAK",
            credentials_key_id="k1",
        )
        await s.executions.create(crew.team_id, saved.agent.id, 1)
        await s.audit.record(crew.team_id, "test.seed")
    return saved.agent


async def test_reading_the_team(db, crew, seeded):
    for table in ("agents", "agent_versions", "agent_executions", "team_members", "teams"):
        col = "id" if table == "teams" else "team_id"
        got = await matrix(
            db, crew, f"select 1 from public.{table} where {col} = %s", lambda r: (crew.team_id,)
        )
        assert got == expect("owner", "admin", "member", "viewer"), table


async def test_creating_agents_and_running_them(db, crew, seeded):
    got = await matrix(
        db,
        crew,
        "insert into public.agents (team_id, name, created_by) values (%s, %s, %s) returning id",
        lambda r: (crew.team_id, f"by-{r}", crew.who(r).user_id),
    )
    assert got == expect("owner", "admin", "member")
    got = await matrix(
        db,
        crew,
        "insert into public.agent_executions (team_id, agent_id, agent_version) "
        "values (%s, %s, 1) returning id",
        lambda r: (crew.team_id, seeded.id),
    )
    assert got == expect("owner", "admin", "member")
    got = await matrix(
        db, crew, "update public.agents set description = 'changed' where id = %s", lambda r: (seeded.id,)
    )
    assert got == expect("owner", "admin", "member")


async def test_data_sources_metadata_yes_ciphertext_never(db, crew, seeded):
    got = await matrix(
        db,
        crew,
        "select name, type, status, credentials_key_id from public.data_sources where team_id = %s",
        lambda r: (crew.team_id,),
    )
    assert got == expect("owner", "admin", "member", "viewer")
    for role in WHO:
        with pytest.raises((PermissionDenied, psycopg.errors.InsufficientPrivilege)):
            async with db.connection(crew.who(role)) as conn:
                await conn.execute("select credentials_encrypted from public.data_sources")
        with pytest.raises((PermissionDenied, psycopg.errors.InsufficientPrivilege)):
            async with db.connection(crew.who(role)) as conn:  # not through a whole-row reference either
                await conn.execute("select d::text from public.data_sources d")
    got = await matrix(
        db,
        crew,
        "insert into public.data_sources (team_id, name, type) values (%s, %s, 'http_api') returning id",
        lambda r: (crew.team_id, f"src-{r}"),
    )
    assert got == expect("owner", "admin")
    got = await matrix(
        db,
        crew,
        "update public.data_sources set config = '{\"x\": 1}' where team_id = %s",
        lambda r: (crew.team_id,),
    )
    assert got == expect("owner", "admin")


async def test_keys_invitations_members_and_audit(db, crew, seeded):
    got = await matrix(
        db,
        crew,
        "insert into public.api_keys (team_id, name, prefix, key_hash, user_id) "
        "values (%s, 'k', 'cx_', %s, %s) returning id",
        lambda r: (crew.team_id, uuid.uuid4().hex, crew.who(r).user_id),
    )
    assert got == expect("owner", "admin")
    got = await matrix(
        db,
        crew,
        "insert into public.team_invitations (team_id, email, role, token_hash, invited_by, "
        "expires_at) values (%s, %s, 'member', %s, %s, now() + interval '1 day') returning id",
        lambda r: (crew.team_id, f"new-{r}@example.com", uuid.uuid4().hex, crew.who(r).user_id),
    )
    assert got == expect("owner", "admin")
    async with db.session(Identity.system()) as s:
        newcomers = {r: (await s.users.create(f"newcomer-{r}@example.com")).id for r in WHO}
    got = await matrix(
        db,
        crew,
        "insert into public.team_members (team_id, user_id, role) values (%s, %s, 'member')",
        lambda r: (crew.team_id, newcomers[r]),
    )
    assert got == expect("owner", "admin")
    got = await matrix(
        db, crew, "select 1 from public.audit_log where team_id = %s", lambda r: (crew.team_id,)
    )
    assert got == expect("owner", "admin")
    # nobody appends entries in someone else's name
    got = await matrix(
        db,
        crew,
        "insert into public.audit_log (team_id, actor_id, action) values (%s, %s, 'forged')",
        lambda r: (crew.team_id, crew.users["owner"] if r != "owner" else crew.users["admin"]),
    )
    assert got == expect()


async def test_only_owners_make_owners_and_change_quotas(db, crew, seeded):
    async with db.session(Identity.system()) as s:  # one viewer per attempt, so attempts do not interact
        targets = {
            r: (
                await s.members.add(
                    crew.team_id, (await s.users.create(f"target-{r}@example.com")).id, "viewer"
                )
            ).user_id
            for r in WHO
        }
    got = await matrix(
        db,
        crew,
        "update public.team_members set role = 'owner' where team_id = %s and user_id = %s",
        lambda r: (crew.team_id, targets[r]),
    )
    assert got == expect("owner")

    got = await matrix(
        db,
        crew,
        "update public.teams set quota_executions_month = %s where id = %s",
        lambda r: (10 + WHO.index(r), crew.team_id),
    )  # a new value each time
    assert got == expect("owner")
    async with db.session(crew.who("owner")) as s:
        key, _ = await s.api_keys.create(crew.team_id, "ci")
    got = await matrix(
        db,
        crew,
        "update public.api_keys set quota_executions_month = %s where id = %s",
        lambda r: (10 + WHO.index(r), key.id),
    )
    assert got == expect("owner")
    # an admin may still rename the team (not a quota)
    assert (
        await attempt(
            db, crew.who("admin"), "update public.teams set name = 'Renamed' where id = %s", (crew.team_id,)
        )
    )[0]
    # admins cannot demote or remove an owner, and the last owner cannot leave
    async with db.session(crew.who("owner")) as s:
        await s.members.remove(crew.team_id, targets["owner"])  # the owner made above
    for sql in (
        "update public.team_members set role = 'viewer' where team_id = %s and user_id = %s",
        "delete from public.team_members where team_id = %s and user_id = %s",
    ):
        assert not (await attempt(db, crew.who("admin"), sql, (crew.team_id, crew.users["owner"])))[0]
        assert not (await attempt(db, crew.who("owner"), sql, (crew.team_id, crew.users["owner"])))[0]


async def test_a_personal_agent_is_visible_only_to_its_creator(db, crew):
    from coherex.services import teams
    from coherex.services.agents import apply_spec

    async with db.session(crew.who("member")) as s:
        mine = (
            await apply_spec(
                s,
                crew.team_id,
                "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: mine}\n"
                "spec: {instructions: Private notes.}\n",
            )
        ).agent
        run = await s.executions.create(crew.team_id, mine.id, 1)
        await s.executions.add_event(run, "stdout", payload={"text": "my private notes"})
    await teams.set_visibility(db, crew.who("member"), crew.team_id, "mine", "personal")
    for table, col, key in (
        ("agents", "id", mine.id),
        ("agent_versions", "agent_id", mine.id),
        ("agent_executions", "agent_id", mine.id),
        ("execution_events", "execution_id", run.id),
    ):
        got = await matrix(
            db, crew, f"select 1 from public.{table} where {col} = %s", lambda r, key=key: (key,)
        )
        assert got == expect("member"), table
    got = await matrix(
        db, crew, "update public.agents set description = 'hijacked' where id = %s", lambda r: (mine.id,)
    )
    assert got == expect("member")
    # nobody takes a team agent and makes it theirs
    async with db.session(crew.who("owner")) as s:
        team_agent = (await s.agents.save_spec(crew.team_id, {"metadata": {"name": "team-one"}}, "")).agent
    for role in ("admin", "member"):
        ok, _ = await attempt(
            db,
            crew.who(role),
            "update public.agents set created_by = %s, visibility = 'personal' where id = %s",
            (crew.users[role], team_agent.id),
        )
        assert not ok, role
        ok, _ = await attempt(
            db,
            crew.who(role),
            "update public.agents set visibility = 'personal' where id = %s",
            (team_agent.id,),
        )
        assert not ok, role
    await teams.set_visibility(db, crew.who("member"), crew.team_id, "mine", "team")
    got = await matrix(db, crew, "select 1 from public.agents where id = %s", lambda r: (mine.id,))
    assert got == expect("owner", "admin", "member", "viewer")
