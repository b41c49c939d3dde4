"""Invitations, sharing, quotas with what is left, and the audit trail of everything that matters."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import textwrap
from datetime import timedelta

import psycopg
import pytest

from coherex.errors import PermissionDenied, QuotaExceeded
from coherex.services import teams
from coherex.services.agents import apply_spec
from coherex.store.db import Identity

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: helper}
    spec: {instructions: Help.}
    """)


async def test_invitation_tokens_are_hashed_single_use_expiring_and_personal(db, crew):
    async with db.session(Identity.system()) as s:
        newbie = await s.users.create("newbie@example.com")
        other = await s.users.create("other@example.com")
    inv, token = await teams.invite(db, crew.who("admin"), crew.team_id, "Newbie@Example.com", "member")
    async with db.connection(Identity.system()) as conn:
        dump = json.dumps(
            [
                list(map(str, r))
                for r in await (await conn.execute("select * from public.team_invitations")).fetchall()
            ]
        )
    assert token not in dump and hashlib.sha256(token.encode()).hexdigest() in dump

    with pytest.raises(PermissionDenied):  # someone else holding the token
        await teams.accept_invitation(db, Identity.user(other.id), token)
    with pytest.raises(PermissionDenied):  # a guessed token
        await teams.accept_invitation(db, Identity.user(newbie.id), token[:-2] + "xx")
    team = await teams.accept_invitation(db, Identity.user(newbie.id), token)
    assert team.id == crew.team_id
    members = {m.email: m.role for m in await teams.list_members(db, crew.who("owner"), crew.team_id)}
    assert members["newbie@example.com"] == "member"
    with pytest.raises(PermissionDenied):  # used already
        await teams.accept_invitation(db, Identity.user(newbie.id), token)

    async with db.session(crew.who("admin")) as s:  # expired
        _, old = await s.invitations.create(
            crew.team_id, "other@example.com", "viewer", valid_for=timedelta(seconds=-1)
        )
    with pytest.raises(PermissionDenied):
        await teams.accept_invitation(db, Identity.user(other.id), old)
    with pytest.raises(PermissionDenied):  # only owners invite owners; members invite nobody
        await teams.invite(db, crew.who("admin"), crew.team_id, "boss@example.com", "owner")
    with pytest.raises(PermissionDenied):
        await teams.invite(db, crew.who("member"), crew.team_id, "friend@example.com", "viewer")


async def test_sharing_and_moving_an_agent_between_teams(db, crew):
    async with db.session(Identity.system()) as s:
        await s.members.add(crew.outsider_team, crew.users["member"], "member")
    async with db.session(crew.who("member")) as s:
        await apply_spec(s, crew.team_id, SPEC)
    copy = await teams.share_agent(db, crew.who("member"), crew.team_id, "helper", crew.outsider_team)
    assert copy.team_id == crew.outsider_team
    async with db.session(crew.who("owner")) as s:
        assert (await s.agents.get_by_name(crew.team_id, "helper")).status == "active"
    async with db.session(crew.who("outsider")) as s:
        await s.agents.delete(copy.id)
    # a viewer of the destination cannot bring agents in
    async with db.session(Identity.system()) as s:
        await s.members.add(crew.outsider_team, crew.users["viewer"], "viewer")
    with pytest.raises(PermissionDenied):
        await teams.share_agent(db, crew.who("viewer"), crew.team_id, "helper", crew.outsider_team)
    # moving: the original is archived (its history stays), the destination has it
    moved = await teams.share_agent(
        db, crew.who("member"), crew.team_id, "helper", crew.outsider_team, move=True
    )
    async with db.session(crew.who("owner")) as s:
        assert (await s.agents.get_by_name(crew.team_id, "helper")).status == "archived"
        actions = [e.action for e in await s.audit.list(crew.team_id)]
    assert (
        moved.team_id == crew.outsider_team and "agent.move_out" in actions and "agent.share_out" in actions
    )


async def test_api_key_quota_is_enforced_by_the_database_and_usage_shows_what_is_left(db, crew, cli_env):
    async with db.session(crew.who("owner")) as s:
        agent = (await apply_spec(s, crew.team_id, SPEC)).agent
        key, _ = await s.api_keys.create(crew.team_id, "ci-bot")
    await teams.set_key_quotas(
        db,
        crew.who("owner"),
        crew.team_id,
        "ci-bot",
        executions_month=2,
        cost_month_usd=None,
        max_concurrent_runs=None,
    )
    await teams.set_quotas(
        db, crew.who("owner"), crew.team_id, executions_month=10, cost_month_usd=5, max_concurrent_runs=3
    )
    as_key = Identity(crew.users["owner"], "authenticated", crew.team_id, {"key_id": str(key.id)})
    for _ in range(2):
        async with db.session(as_key) as s:
            await s.executions.create(crew.team_id, agent.id, 1)
    with pytest.raises(QuotaExceeded, match="ci-bot has used its 2 executions"):
        async with db.session(as_key) as s:
            await s.executions.create(crew.team_id, agent.id, 1)
    async with db.session(crew.who("owner")) as s:  # without the key: the team's quota still has room
        await s.executions.create(crew.team_id, agent.id, 1)

    u = await teams.usage(db, crew.who("viewer"), crew.team_id)  # every member sees what is left
    assert (u.team.executions, u.team.executions_left, u.team.running) == (3, 7, 3)
    [k] = u.keys
    assert (k.name, k.executions, k.quota_executions_month) == ("ci-bot", 2, 2)

    env = {**cli_env, "COHEREX_USER": "viewer@crew.example", "COHEREX_TEAM": "crew"}
    out = subprocess.run(
        [sys.executable, "-m", "coherex", "teams", "usage", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["executions_left"] == 7 and data["keys"][0]["executions_left"] == 0
    denied = subprocess.run(
        [sys.executable, "-m", "coherex", "teams", "quota", "--executions", "999"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1 and "owner" in denied.stderr and "Traceback" not in denied.stderr


async def test_the_audit_log_records_roles_quotas_credentials_runs_and_agents(db, crew):
    from coherex.runtime import Runtime

    await teams.set_role(db, crew.who("owner"), crew.team_id, "viewer@crew.example", "member")
    await teams.remove_member(db, crew.who("admin"), crew.team_id, "member@crew.example")
    await teams.set_quotas(
        db, crew.who("owner"), crew.team_id, executions_month=5, cost_month_usd=None, max_concurrent_runs=None
    )
    async with db.session(crew.who("admin")) as s:
        src = await s.sources.create(
            crew.team_id,
            "api",
            "http_api",
            {"base_url": "https://example.com"},
            credentials_encrypted="c1",
            credentials_key_id="k1",
        )
        await s.sources.set_credentials(src.id, "c2", "k1")
        agent = (await apply_spec(s, crew.team_id, SPEC)).agent
    await Runtime(db).create(crew.who("admin"), crew.team_id, agent)
    async with db.session(crew.who("admin")) as s:
        entries = await s.audit.list(crew.team_id, limit=500)
    actions = {e.action for e in entries}
    assert {
        "member.add",
        "member.role_change",
        "member.remove",
        "team.quota_change",
        "data_source.credentials_change",
        "agent.create",
        "execution.create",
    } <= actions
    change = next(e for e in entries if e.action == "member.role_change")
    assert change.actor_id == crew.users["owner"] and change.details == {"from": "viewer", "to": "member"}
    assert "c2" not in json.dumps([e.details for e in entries])  # the ciphertext is not copied into the log
    # and none of it can be rewritten, even by an owner
    for stmt in (
        "update public.audit_log set action = 'x'",
        "delete from public.audit_log",
        "truncate public.audit_log",
    ):
        with pytest.raises((PermissionDenied, psycopg.Error)):
            async with db.connection(crew.who("owner")) as conn:
                await conn.execute(stmt)


async def test_logins_are_recorded_good_and_bad(db, crew):
    async with db.session(Identity.system()) as s:
        assert await s.users.authenticate("admin@crew.example", "correct horse") is not None
        assert await s.users.authenticate("admin@crew.example", "wrong password") is None
    async with db.session(crew.who("owner")) as s:
        actions = [e.action for e in await s.audit.list(crew.team_id) if e.action.startswith("login")]
    assert actions == ["login.failed", "login"]


async def test_password_guessing_is_throttled_per_account(db, monkeypatch):
    from coherex.settings import reset_settings_cache
    from coherex.store.repos.teams import LoginThrottled

    monkeypatch.setenv("COHEREX_LOGIN_ATTEMPTS", "3")
    monkeypatch.setenv("COHEREX_LOGIN_RETRY_SECONDS", "1")
    reset_settings_cache()

    async def login(email: str, password: str):
        async with db.session(Identity.system()) as s:
            return await s.users.authenticate(email, password)

    try:
        async with db.session(Identity.system()) as s:
            await s.users.create("target@example.com", password="correct horse battery")
            await s.users.create("bystander@example.com", password="another good one")
        for _ in range(5):  # signing in successfully never counts
            assert await login("target@example.com", "correct horse battery")
        for _ in range(3):
            assert await login("target@example.com", "a guess") is None
        # throttled: even the right password is refused, without being checked
        with pytest.raises(LoginThrottled, match="Too many failed sign-ins") as refused:
            await login(" Target@Example.com", "correct horse battery")
        assert "hint: Try again in 1 s" in str(refused.value)
        assert await login("bystander@example.com", "another good one")  # other accounts are not affected
        await asyncio.sleep(1.2)  # one more try per retry interval
        assert await login("target@example.com", "correct horse battery")
    finally:
        reset_settings_cache()
