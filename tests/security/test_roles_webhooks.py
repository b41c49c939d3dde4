"""Roles on the routes RLS alone cannot guard, webhook replay, and the audit/API-key findings of
issue 16 (findings 4, 5, 9, 11). Everything goes through the real API over HTTP; each refused
request changes nothing stored (counts before and after)."""

from __future__ import annotations

import json
import textwrap

import psycopg
import pytest

from coherex.services import teams
from coherex.services.triggers import sign, signed_headers
from coherex.store.db import Identity

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: on-alert}
    spec:
      instructions: Handle the alert.
      inputs: {alert: {type: object, default: {}}}
      triggers:
        - webhook: {input: alert}
    """)


async def _counts(db) -> dict[str, int]:
    async with db.connection(Identity.system()) as conn:
        out = {}
        for t in (
            "agents",
            "agent_executions",
            "data_sources",
            "audit_log",
            "api_keys",
            "webhook_deliveries",
            "team_members",
        ):
            out[t] = (await (await conn.execute(f"select count(*) from public.{t}")).fetchone())[0]
        return out


@pytest.fixture
async def role_keys(db, crew) -> dict[str, str]:
    """An API key per role of the crew team (keys act as their creator)."""
    out = {}
    async with db.session(crew.who("owner")) as s:
        for role, user_id in crew.users.items():
            out[role] = (await s.api_keys.create(crew.team_id, f"{role}-key", user_id=user_id))[1]
    return out


@pytest.fixture
async def hooked(api, role_keys):
    """An agent with a webhook whose secret an admin's key made."""
    async with api.client(role_keys["admin"]) as c:
        agent = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]
        hook = (await c.get(f"/api/agents/{agent['id']}/webhook")).json()
    return agent, hook


async def test_webhook_secret_is_for_admins_only(api, db, role_keys, hooked):
    agent, hook = hooked
    before = await _counts(db)
    for role in ("viewer", "member"):
        async with api.client(role_keys[role]) as c:
            for params in ({}, {"rotate": "true"}):
                r = await c.get(f"/api/agents/{agent['id']}/webhook", params=params)
                assert r.status_code == 403, (role, params, r.text)
                assert hook["secret"] not in r.text and "admin role" in r.json()["error"]["message"]
    assert await _counts(db) == before  # not even an audit row of a read
    async with api.client(role_keys["owner"]) as c:  # the secret was not rotated by anyone refused
        assert (await c.get(f"/api/agents/{agent['id']}/webhook")).json()["secret"] == hook["secret"]


async def test_viewers_cannot_test_sources_or_re_embed(api, db, saas, role_keys):
    async with api.client(role_keys["admin"]) as c:
        r = await c.post(
            "/api/sources",
            json={
                "type": "http_api",
                "name": "ops-api",
                "config": {"base_url": f"{saas.url}/api/v1"},
                "credentials": {"auth_value": "Bearer ops-secret-123456"},
            },
        )
        assert r.status_code == 201, r.text
    async with api.client(role_keys["member"]) as c:
        r = await c.post(
            "/api/knowledge/upload",
            data={"collection": "notes"},
            files={"file": ("n.md", b"# Notes\n\nThe teapot is blue.", "text/markdown")},
        )
        assert r.status_code == 200, r.text
    calls, before = len(saas.of("api")), await _counts(db)
    async with api.client(role_keys["viewer"]) as c:
        r = await c.post("/api/sources/ops-api/validate")
        assert r.status_code == 403 and "member role" in r.json()["error"]["message"], r.text
        r = await c.post("/api/knowledge/embed", json={"collection": "notes"})
        assert r.status_code == 403, r.text
    assert len(saas.of("api")) == calls  # no outbound call was made with the team's credentials
    assert await _counts(db) == before
    async with api.client(role_keys["member"]) as c:  # members may
        checked = await c.post("/api/sources/ops-api/validate")
        assert checked.status_code == 200 and "answered HTTP" in checked.json()["message"], checked.text
        assert (await c.post("/api/knowledge/embed", json={"collection": "notes"})).json()["chunks"] >= 1
    assert len(saas.of("api")) == calls + 1


async def test_webhook_runs_count_against_the_key_that_made_the_secret(api, db, crew, role_keys, hooked):
    agent, hook = hooked
    await teams.set_key_quotas(
        db,
        crew.who("owner"),
        crew.team_id,
        "admin-key",
        executions_month=1,
        cost_month_usd=None,
        max_concurrent_runs=None,
    )
    body = b'{"service": "db"}'
    async with api.client() as sender:
        first = await sender.post(
            f"/api/hooks/{agent['id']}", content=body, headers=signed_headers(hook["secret"], body)
        )
        assert first.status_code == 202, first.text
        before = await _counts(db)
        second = await sender.post(
            f"/api/hooks/{agent['id']}", content=body, headers=signed_headers(hook["secret"], body)
        )
    assert second.status_code == 402 and second.json()["error"]["code"] == "quota_exceeded", second.text
    assert "admin-key" in second.json()["error"]["message"]
    assert await _counts(db) == before  # no run, and the refused delivery was not recorded either
    async with db.session(Identity.system()) as s:
        runs = [x for x in await s.executions.list(limit=100) if x.trigger == "webhook"]
    assert len(runs) == 1


async def test_a_captured_webhook_cannot_be_replayed_under_another_delivery_id(api, db, hooked):
    agent, hook = hooked
    body = json.dumps({"alert": "disk full"}).encode()
    captured = signed_headers(hook["secret"], body, "delivery-1")
    url = f"/api/hooks/{agent['id']}"
    async with api.client() as anyone:
        assert (await anyone.post(url, content=body, headers=captured)).status_code == 202
        before = await _counts(db)
        signature = captured["X-Coherex-Signature"]
        replays = [
            {"X-Coherex-Signature": signature, "X-Coherex-Delivery": "delivery-2"},  # a new id
            {"X-Coherex-Signature": signature},  # no id
            {
                "X-Coherex-Signature": signature + ",v0=x",
                "X-Coherex-Delivery": "delivery-3",
            },  # another scheme
            {"X-Coherex-Signature": signature + ",v0=x", "X-Coherex-Delivery": "delivery-1"},
            {"X-Coherex-Signature": f"{signature},{signature}", "X-Coherex-Delivery": "delivery-4"},
            captured,  # the same delivery again
        ]
        # a dot in an id would let "<t>.<id>.<body>" be split another way: the signature of id "d-9" and
        # body "x.{…}" would also sign id "d-9.x" and body "{…}"
        dotted = sign(hook["secret"], b"x." + body, "d-9")
        cases = [(body, h) for h in replays] + [
            (body, {"X-Coherex-Signature": dotted, "X-Coherex-Delivery": "d-9.x"})
        ]
        for content, headers in cases:
            r = await anyone.post(url, content=content, headers=headers)
            assert r.status_code == 403, (headers, r.status_code, r.text)
            assert r.json()["error"]["code"] == "permission_denied" and hook["secret"] not in r.text
    assert await _counts(db) == before


async def test_removed_members_keys_are_listed_as_revoked_and_refused(api, db, crew, role_keys):
    async with api.client(role_keys["member"]) as c:
        assert (await c.get("/api/agents")).status_code == 200
    await teams.remove_member(db, crew.who("admin"), crew.team_id, "member@crew.example")
    async with db.session(crew.who("owner")) as s:
        listed = {k.name: k for k in await s.api_keys.list(crew.team_id)}
    assert listed["member-key"].revoked_at is not None  # the listing tells the truth
    assert all(listed[f"{r}-key"].revoked_at is None for r in ("owner", "admin", "viewer"))
    async with api.client(role_keys["member"]) as c:
        r = await c.get("/api/agents")
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


async def test_not_even_the_table_owner_can_truncate_the_audit_log(db, db_urls, crew):
    async with db.session(crew.who("owner")) as s:
        await s.audit.record(crew.team_id, "test.keep-me")
    before = await _counts(db)
    with psycopg.connect(db_urls.admin, autocommit=True) as conn:  # the migrations' login: owner of the table
        owner = conn.execute("select tableowner from pg_tables where tablename = 'audit_log'").fetchone()[0]
        assert conn.execute("select current_user").fetchone()[0] in (owner, "postgres")
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("truncate public.audit_log")
        with pytest.raises(psycopg.Error, match="append-only"):
            conn.execute("truncate public.audit_log cascade")
    assert await _counts(db) == before
