"""Attacks through the HTTP API: another team's ids, SQL-injection strings in every text field,
oversized and malformed payloads, path traversal in uploads, forged webhooks. Each is refused
with a 4xx JSON error (never a 500), nothing of the other team leaks and nothing stored is lost."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import UTC

import pytest

from coherex.services.triggers import signed_headers
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: secret-agent, description: alpha private plans}
    spec:
      instructions: Alpha's confidential instructions.
      inputs:
        topic: {type: string, default: news}
        payload: {type: object, default: {}}
      triggers:
        - webhook: {input: payload}
    """)

INJECTIONS = [
    "'; drop table public.agents; --",
    "x' or '1'='1",
    '" or 1=1 --',
    "1; select pg_sleep(5)",
    "'); set role service_role; select * from public.data_sources; --",
    "$$; delete from public.audit_log; $$",
    "\\x00\\' union select credentials_encrypted from public.data_sources --",
    "%s %(x)s {0} ${x}",
]


def assert_clean_error(r, *codes: int) -> None:
    assert r.status_code in codes, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    assert "Traceback" not in r.text and "psycopg" not in r.text


async def _table_counts(db) -> dict[str, int]:
    async with db.connection(Identity.system()) as conn:
        out = {}
        for t in (
            "agents",
            "agent_versions",
            "agent_executions",
            "data_sources",
            "audit_log",
            "team_members",
            "teams",
            "api_keys",
        ):
            out[t] = (await (await conn.execute(f"select count(*) from public.{t}")).fetchone())[0]
        return out


@pytest.fixture
async def alpha_world(api, keys, db, two_teams, fake_llm):
    """Alpha has an agent with a run, events and a webhook secret, a data source and a collection."""
    alpha_key, _ = keys
    fake_llm.always(Text("alpha's private answer"))
    async with api.client(alpha_key) as c:
        agent = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]
        execution = (
            await c.post(f"/api/agents/{agent['id']}/execute", json={"inputs": {"topic": "plans"}})
        ).json()
        hook = (await c.get(f"/api/agents/{agent['id']}/webhook")).json()
    alpha, _ = two_teams
    async with db.session(alpha.identity) as s:
        await s.knowledge.create_collection(alpha.team_id, "handbook", description="alpha private plans")
    async with api.client(alpha_key) as c:
        r = await c.post(
            "/api/sources",
            json={
                "type": "http_api",
                "name": "alpha-api",
                "config": {"base_url": "https://example.com"},
                "credentials": {"auth_value": "ALPHA-TOKEN-123456"},
            },
        )
        assert r.status_code == 201, r.text
    return {"agent": agent, "execution": execution, "hook": hook}


async def test_another_teams_ids_are_404_and_nothing_leaks(api, keys, db, alpha_world):
    _, bravo_key = keys
    agent_id, ex_id = alpha_world["agent"]["id"], alpha_world["execution"]["id"]
    before = await _table_counts(db)
    async with api.client(bravo_key) as c:
        attempts = [
            c.get(f"/api/agents/{agent_id}"),
            c.get(f"/api/agents/{agent_id}/versions"),
            c.get(f"/api/agents/{agent_id}/versions/1"),
            c.put(f"/api/agents/{agent_id}", json={"spec": SPEC}),
            c.delete(f"/api/agents/{agent_id}"),
            c.post(f"/api/agents/{agent_id}/execute", json={}),
            c.post(f"/api/agents/{agent_id}/stop"),
            c.post(f"/api/agents/{agent_id}/pause"),
            c.get(f"/api/agents/{agent_id}/logs", params={"follow": "false"}),
            c.get(f"/api/agents/{agent_id}/webhook"),
            c.get(f"/api/executions/{ex_id}"),
            c.get(f"/api/executions/{ex_id}/events"),
            c.post(f"/api/executions/{ex_id}/stop"),
            c.post("/api/sources/alpha-api/validate"),
            c.delete("/api/sources/alpha-api"),
        ]
        for coro in attempts:
            r = await coro  # noqa: PLW2901
            assert_clean_error(r, 403, 404)
            # (an error may repeat what the attacker sent, like the source name; never alpha's data)
            assert (
                "confidential" not in r.text
                and "private" not in r.text
                and alpha_world["hook"]["secret"] not in r.text
            )
        listing = [(await c.get(p)).json() for p in ("/api/agents", "/api/executions", "/api/sources")]
        assert listing == [[], [], []]
        # alpha's collection of that name does not exist for bravo: 404, and the hint lists
        # bravo's collections (none), not alpha's
        r = await c.post("/api/knowledge/search", json={"collection": "handbook", "query": "plans"})
        assert_clean_error(r, 404)
        assert r.json()["error"]["message"] == "There is no collection 'handbook' in this team."
        assert "Collections: none yet" in r.json()["error"]["hint"] and "alpha" not in r.text.lower()
    assert await _table_counts(db) == before
    async with db.session(Identity.system()) as s:
        assert (await s.executions.get(ex_id)).cancel_requested is False


async def test_dashboard_readers_show_nothing_of_another_team(db, db_urls, two_teams, alpha_world):
    from datetime import datetime, timedelta

    from coherex.dashboard.data import Filters, SqlReader, SyncDatabase

    alpha, bravo = two_teams
    sync = SyncDatabase(db_urls.app)
    try:
        now = datetime.now(UTC)
        f = Filters(alpha.team_id, now - timedelta(days=1), now + timedelta(days=1))
        spy = SqlReader(sync, bravo.identity)  # bravo asks for alpha's team by id
        assert spy.summary(f).get("executions", 0) in (0, None)
        assert len(spy.executions(f)) == 0 and len(spy.timeseries(f)) in (0, len(spy.timeseries(f)))
        assert spy.execution(alpha.team_id, alpha_world["execution"]["id"]) is None
        for method in ("agents", "data_sources", "audit", "usage", "collections"):
            assert len(getattr(spy, method)(alpha.team_id)) == 0, method
        assert len(spy.events(alpha.team_id, alpha_world["execution"]["id"])) == 0
        own = SqlReader(sync, alpha.identity)
        assert len(own.executions(f)) == 1 and len(own.agents(alpha.team_id)) == 1
    finally:
        sync.close()


@pytest.mark.parametrize("evil", INJECTIONS)
async def test_sql_injection_strings_are_data_not_code(api, keys, db, alpha_world, evil):
    alpha_key, _ = keys
    before = await _table_counts(db)
    agent_id = alpha_world["agent"]["id"]
    async with api.client(alpha_key) as c:
        spec_with_evil = SPEC.replace("alpha private plans", json.dumps(evil))
        responses = [
            await c.post("/api/agents", json={"spec": SPEC.replace("secret-agent", evil)}),  # name
            await c.post("/api/agents/validate", json={"spec": spec_with_evil}),
            await c.post(
                "/api/agents",
                json={
                    "spec": {
                        "apiVersion": "coherex/v1",
                        "kind": "Agent",
                        "metadata": {"name": "x", evil: evil},
                    }
                },
            ),
            await c.post("/api/sources", json={"type": evil, "name": "ok-name", "credentials": {evil: evil}}),
            await c.post("/api/sources", json={"type": "http_api", "name": evil}),
            await c.post(f"/api/sources/{evil}/validate"),
            await c.post("/api/knowledge/search", json={"collection": evil, "query": evil}),
            await c.get("/api/executions", params={"status": evil, "agent": evil, "limit": evil}),
            await c.get(f"/api/agents/{agent_id}/logs", params={"execution_id": evil, "follow": "false"}),
            await c.get(f"/api/agents/{evil}"),
        ]
        for r in responses:
            assert r.status_code < 500, (r.status_code, r.text[:300])
            if r.status_code >= 400:
                assert_clean_error(r, r.status_code)
        # in a free-text field the string is stored verbatim and read back verbatim
        saved = await c.put(f"/api/agents/{agent_id}", json={"spec": spec_with_evil, "message": evil})
        assert saved.status_code == 200, saved.text
        run = await c.post(f"/api/agents/{agent_id}/execute", json={"inputs": {"topic": evil}})
        assert run.status_code == 202 and run.json()["inputs"]["topic"] == evil
        got = (await c.get(f"/api/agents/{agent_id}")).json()
        assert got["agent"]["description"] == evil and got["version"]["message"] == evil
    after = await _table_counts(db)
    assert after["agents"] == before["agents"] and after["data_sources"] == before["data_sources"]
    assert after["agent_executions"] == before["agent_executions"] + 1
    assert after["audit_log"] >= before["audit_log"]


async def test_oversized_deep_binary_and_mistyped_bodies_are_clean_4xx(api, keys, db, alpha_world):
    alpha_key, _ = keys
    agent_id = alpha_world["agent"]["id"]
    before = await _table_counts(db)
    deep = "[" * 100_000 + "]" * 100_000
    deep_obj = '{"spec": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"
    huge = json.dumps({"spec": "metadata: {name: big}\n# " + "x" * (12 * 2**20)})
    cases = [
        ("POST", "/api/agents", deep, {"Content-Type": "application/json"}),
        ("POST", "/api/agents", deep_obj, {"Content-Type": "application/json"}),
        ("POST", "/api/agents", huge, {"Content-Type": "application/json"}),
        (
            "POST",
            "/api/agents",
            b"\x00\xff\xfe\x89PNG\r\n\x1a\n" * 1000,
            {"Content-Type": "application/json"},
        ),
        ("POST", "/api/agents", b"\x00\xff\xfe" * 1000, {"Content-Type": "application/octet-stream"}),
        ("POST", "/api/agents", "spec=x", {"Content-Type": "application/x-www-form-urlencoded"}),
        ("POST", "/api/agents", '{"spec": ', {"Content-Type": "application/json"}),
        ("POST", "/api/agents", "[]", {"Content-Type": "application/json"}),
        ("POST", "/api/agents", '{"spec": 12}', {"Content-Type": "application/json"}),
        ("POST", "/api/agents", '{"spec": "\\ud800"}', {"Content-Type": "application/json"}),
        (
            "POST",
            "/api/agents",
            '{"spec": {"apiVersion": "coherex/v1", "kind": "Agent", "metadata": {"name": "u", '
            '"description": "\\udfff"}, "spec": {"instructions": "x"}}}',
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            f"/api/agents/{agent_id}/execute",
            '{"inputs": {"topic": "\\ud800"}}',
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            f"/api/agents/{agent_id}/execute",
            '{"inputs": {"topic": "nul\\u0000byte"}}',
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            "/api/agents/validate",
            '{"spec": "' + "- " * 200_000 + '"}',
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            "/api/agents/validate",
            json.dumps({"spec": "a: &a [*a, *a]\n" + "b: &b [*a, *a, *a]\n" * 30}),
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            f"/api/agents/{agent_id}/execute",
            '{"inputs": "not an object"}',
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            f"/api/agents/{agent_id}/execute",
            '{"inputs": {"topic": ' + "[" * 3000 + "]" * 3000 + "}}",
            {"Content-Type": "application/json"},
        ),
        ("POST", f"/api/agents/{agent_id}/execute", b"\xff" * 100, {"Content-Type": "text/plain"}),
        (
            "POST",
            "/api/knowledge/search",
            '{"collection": "c", "query": "' + "q" * 10_000 + '"}',
            {"Content-Type": "application/json"},
        ),
        (
            "POST",
            "/api/knowledge/upload",
            b"--x\r\nnot multipart",
            {"Content-Type": "multipart/form-data; boundary=x"},
        ),
        ("GET", "/api/executions?limit=-1&offset=99999999999999999999", None, {}),
        ("GET", "/api/agents/not-a-uuid", None, {}),
    ]
    async with api.client(alpha_key) as c:
        for method, path, body, headers in cases:
            r = await c.request(method, path, content=body, headers=headers)
            if path.endswith("/validate") and r.status_code == 200:  # validation answers with a report
                assert r.json()["valid"] is False and r.json()["problems"], r.text[:300]
                continue
            assert 400 <= r.status_code < 500, (path, str(body)[:80], r.status_code, r.text[:300])
            assert_clean_error(r, r.status_code)
        assert (await c.get("/api/health")).status_code == 200  # still serving
    assert await _table_counts(db) == before


async def test_upload_filenames_cannot_traverse(api, keys, db, alpha_world, tmp_path):
    alpha_key, _ = keys
    passwd_before = open("/etc/passwd", "rb").read()
    names = [
        "../../etc/passwd",
        "../../../../../../etc/passwd",
        "/etc/passwd",
        "..\\..\\windows\\win.ini",
        "ok/../../../tmp/escaped.txt",
        "%2e%2e%2fetc%2fpasswd",
        "a\x00.txt",
        "....",
    ]
    async with api.client(alpha_key) as c:
        for name in names:
            r = await c.post(
                "/api/knowledge/upload",
                data={"collection": "uploads"},
                files={"file": (name, b"harmless notes about teapots", "text/plain")},
            )
            assert r.status_code < 500, (name, r.status_code, r.text[:300])
            if r.status_code >= 400:
                assert_clean_error(r, r.status_code)
        hits = (await c.post("/api/knowledge/search", json={"collection": "uploads", "query": "root"})).json()
    # the name is a label: nothing was read from or written to the host's paths
    assert open("/etc/passwd", "rb").read() == passwd_before
    assert not any("root:" in h.get("content", h.get("text", "")) for h in hits)
    import os

    assert not os.path.exists("/tmp/escaped.txt")


async def test_forged_webhooks_start_nothing(api, keys, db, two_teams, alpha_world):
    _, bravo_key = keys
    hook, agent_id = alpha_world["hook"], alpha_world["agent"]["id"]
    async with api.client(bravo_key) as c:  # bravo's own agent and secret
        bravo_agent = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]
        bravo_secret = (await c.get(f"/api/agents/{bravo_agent['id']}/webhook")).json()["secret"]
    body = json.dumps({"alert": "disk full"}).encode()
    async with db.session(Identity.system()) as s:
        runs_before = len(await s.executions.list(limit=1000))
    async with api.client() as anyone:
        ok = await anyone.post(
            f"/api/hooks/{agent_id}", content=body, headers=signed_headers(hook["secret"], body, "d-1")
        )
        assert ok.status_code == 202
        forged = [
            signed_headers("whsec_guess", body),
            signed_headers(bravo_secret, body),  # another agent's secret
            signed_headers(hook["secret"], body, timestamp=int(time.time()) - 3600),  # stale
            signed_headers(hook["secret"], body, timestamp=int(time.time()) + 3600),  # from the future
            signed_headers(hook["secret"], body, "d-1"),  # replay
            {},
            {"X-Coherex-Signature": "t=1,v1=" + "0" * 64},
            {"X-Coherex-Signature": "v1=" + "a" * 10_000},
        ]
        for headers in forged:
            r = await anyone.post(f"/api/hooks/{agent_id}", content=body, headers=headers)
            assert_clean_error(r, 401, 403)
            assert hook["secret"] not in r.text and bravo_secret not in r.text
        r = await anyone.post(
            f"/api/hooks/{bravo_agent['id']}",
            content=body,  # alpha's secret on bravo's agent
            headers=signed_headers(hook["secret"], body),
        )
        assert_clean_error(r, 401, 403)
    async with db.session(Identity.system()) as s:
        assert len(await s.executions.list(limit=1000)) == runs_before + 1


async def test_api_key_quota_refuses_runs_over_the_api(api, keys, db, two_teams, alpha_world):
    from coherex.services import teams

    alpha, _ = two_teams
    alpha_key, _ = keys
    await teams.set_key_quotas(
        db,
        alpha.identity,
        alpha.team_id,
        "tests",
        executions_month=2,
        cost_month_usd=None,
        max_concurrent_runs=None,
    )
    agent_id = alpha_world["agent"]["id"]
    async with api.client(alpha_key) as c:  # the fixture's run counts: one left
        assert (await c.post(f"/api/agents/{agent_id}/execute", json={})).status_code == 202
        r = await c.post(f"/api/agents/{agent_id}/execute", json={})
    assert_clean_error(r, 402)
    assert r.json()["error"]["code"] == "quota_exceeded"  # the same answer as a team quota
    assert "tests" in r.json()["error"]["message"] and "2 executions" in r.json()["error"]["message"]
