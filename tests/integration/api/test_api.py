"""The HTTP API over real HTTP: auth, agents and versions, runs, logs, isolation, limits."""

from __future__ import annotations

import json
import textwrap

from coherex.testing.api import ApiServer
from coherex.testing.fake_openai import Text

SPEC = textwrap.dedent("""\
    apiVersion: coherex/v1
    kind: Agent
    metadata: {name: api-agent, description: first}
    spec:
      instructions: Summarise {{topic}}.
      inputs:
        topic: {type: string, default: news}
    """)


async def test_health_needs_no_key(api):
    async with api.client() as c:
        r = await c.get("/api/health")
    assert r.status_code == 200 and r.json()["database"] == "ok"


async def test_missing_or_bad_key_is_401_with_a_clear_message(api, keys):
    async with api.client() as c:
        r = await c.get("/api/agents")
    assert r.status_code == 401 and "API key" in r.json()["error"]["message"]
    async with api.client("cx_not-a-real-key") as c:
        r = await c.get("/api/agents")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_agents_crud_and_versions(api, keys):
    alpha, _ = keys
    async with api.client(alpha) as c:
        r = await c.post("/api/agents", json={"spec": SPEC})
        assert r.status_code == 201, r.text
        agent_id = r.json()["agent"]["id"]
        again = await c.post("/api/agents", json={"spec": SPEC})
        assert again.status_code == 200 and again.json()["created_version"] is False

        changed = SPEC.replace("description: first", "description: second")
        r = await c.put(f"/api/agents/{agent_id}", json={"spec": changed, "message": "reword"})
        assert r.status_code == 200 and r.json()["version"]["version"] == 2

        got = (await c.get(f"/api/agents/{agent_id}")).json()
        assert got["agent"]["description"] == "second" and got["version"]["version"] == 2
        versions = (await c.get(f"/api/agents/{agent_id}/versions")).json()
        assert [v["version"] for v in versions] == [1, 2] and versions[1]["message"] == "reword"
        assert "first" in (await c.get(f"/api/agents/{agent_id}/versions/1")).json()["spec_yaml"]
        missing = await c.get(f"/api/agents/{agent_id}/versions/9")
        assert missing.status_code == 404 and "versions 1 to 2" in missing.json()["error"]["hint"]

        renamed = await c.put(f"/api/agents/{agent_id}", json={"spec": SPEC.replace("api-agent", "other")})
        assert renamed.status_code == 422 and "Renaming" in renamed.json()["error"]["hint"]

        assert (await c.delete(f"/api/agents/{agent_id}")).status_code == 204
        assert (await c.get(f"/api/agents/{agent_id}")).status_code == 404


async def test_validate_reports_every_problem_with_its_path(api, keys):
    alpha, _ = keys
    bad = SPEC.replace(
        "instructions: Summarise {{topic}}.", "instructions: x\n  tools:\n    - use: slack.post_mesage"
    )
    async with api.client(alpha) as c:
        r = await c.post("/api/agents/validate", json={"spec": bad})
        broken = await c.post("/api/agents", json={"spec": "apiVersion: [unclosed"})
    body = r.json()
    assert r.status_code == 200 and body["valid"] is False
    problem = next(p for p in body["problems"] if p["path"] == "spec.tools[0].use")
    assert "slack.post_message" in (problem["hint"] or problem["message"])
    assert broken.status_code == 422 and "line" in broken.json()["error"]["message"]
    async with api.client(alpha) as c:
        assert (await c.get("/api/agents")).json() == []  # nothing was stored


async def test_an_older_version_still_runs_as_it_was(api, keys, fake_llm, drain):
    """Saving v2 does not change v1: a run of version 1 uses v1's instructions and is recorded as v1."""
    alpha, _ = keys
    fake_llm.script([Text("old"), Text("new")])
    async with api.client(alpha) as c:
        agent_id = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]
        await c.put(f"/api/agents/{agent_id}", json={"spec": SPEC.replace("Summarise", "Translate")})
        old = (await c.post(f"/api/agents/{agent_id}/execute", json={"version": 1})).json()
        await drain()
        new = (await c.post(f"/api/agents/{agent_id}/execute")).json()
        await drain()
        runs = {r["id"]: r for r in (await c.get("/api/executions", params={"limit": 10})).json()}
    assert runs[old["id"]]["agent_version"] == 1 and runs[new["id"]]["agent_version"] == 2
    systems = [r.body["messages"][0]["content"] for r in fake_llm.chat_requests]
    assert "Summarise news." in systems[0] and "Translate news." in systems[1]


async def test_execute_runs_through_the_queue_and_logs_stream(api, keys, fake_llm, drain):
    alpha, _ = keys
    fake_llm.script([Text("Here is the summary.")])
    async with api.client(alpha) as c:
        agent_id = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]
        r = await c.post(f"/api/agents/{agent_id}/execute", json={"inputs": {"topic": "sports"}})
        assert r.status_code == 202 and r.json()["status"] == "pending"
        execution_id = r.json()["id"]
        await drain()
        done = (await c.get(f"/api/executions/{execution_id}")).json()
        assert done["status"] == "completed" and done["output"] == {"text": "Here is the summary."}
        assert done["inputs"] == {"topic": "sports"}
        events = (await c.get(f"/api/executions/{execution_id}/events")).json()
        assert [e["type"] for e in events] == ["llm_call", "status"]

        frames = []
        async with c.stream("GET", f"/api/agents/{agent_id}/logs") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    frames.append(line.split(":", 1)[1].strip())
        assert frames == ["step", "step", "end"]
        bad_inputs = await c.post(f"/api/agents/{agent_id}/execute", json={"inputs": {"nope": 1}})
        assert (
            bad_inputs.status_code == 422 and "unknown input 'nope'" in bad_inputs.json()["error"]["message"]
        )


async def test_team_b_cannot_touch_team_a_agents(api, keys):
    alpha, bravo = keys
    async with api.client(alpha) as a:
        agent_id = (await a.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]
        execution_id = (await a.post(f"/api/agents/{agent_id}/execute", json={})).json()["id"]
    async with api.client(bravo) as b:
        assert (await b.get("/api/agents")).json() == []
        for method, path in [
            ("GET", f"/api/agents/{agent_id}"),
            ("PUT", f"/api/agents/{agent_id}"),
            ("DELETE", f"/api/agents/{agent_id}"),
            ("POST", f"/api/agents/{agent_id}/execute"),
            ("POST", f"/api/agents/{agent_id}/stop"),
            ("GET", f"/api/agents/{agent_id}/logs"),
            ("GET", f"/api/executions/{execution_id}"),
            ("POST", f"/api/executions/{execution_id}/stop"),
        ]:
            r = await b.request(method, path, json={"spec": SPEC} if method == "PUT" else None)
            assert r.status_code == 404, (method, path, r.status_code)
        assert (await b.get("/api/executions")).json() == []
    async with api.client(alpha) as a:
        assert (await a.get(f"/api/agents/{agent_id}")).status_code == 200  # untouched


async def test_quota_is_402_and_rate_limit_is_429(api, keys, db, two_teams, monkeypatch):
    alpha, _ = keys
    tenant = two_teams[0]
    async with db.session(tenant.identity) as s:
        await s.teams.set_quotas(
            tenant.team_id, executions_month=1, cost_month_usd=None, max_concurrent_runs=None
        )
    async with api.client(alpha) as c:
        agent_id = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]
        assert (await c.post(f"/api/agents/{agent_id}/execute")).status_code == 202
        over = await c.post(f"/api/agents/{agent_id}/execute")
        assert over.status_code == 402 and over.json()["error"]["code"] == "quota_exceeded"

        statuses = [(await c.get("/api/agents")).status_code for _ in range(60)]
        limited = next(r for r in [await c.get("/api/agents")] if r.status_code == 429)
    assert statuses[:20] == [200] * 20  # a burst of normal use is fine
    assert 429 in statuses
    assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["error"]["code"] == "rate_limited"


async def test_the_rate_limit_holds_across_web_processes(api, keys):
    """Two web processes (two apps with their own state) share one bucket per key: the burst (30 in
    these tests, refilled at 1/s) is not doubled by spreading requests over them."""
    alpha, bravo = keys
    with ApiServer() as other:
        async with api.client(alpha) as one, other.client(alpha) as two, api.client(bravo) as theirs:
            statuses = [
                (await client.get("/api/agents")).status_code for _ in range(25) for client in (one, two)
            ]
            # another key has its own bucket
            assert (await theirs.get("/api/agents")).status_code == 200
    assert statuses[:20] == [200] * 20
    assert 30 <= statuses.count(200) <= 35 and statuses.count(429) >= 15, statuses


async def test_stop_agent_cancels_pending_runs(api, keys):
    alpha, _ = keys
    async with api.client(alpha) as c:
        agent_id = (await c.post("/api/agents", json={"spec": SPEC})).json()["agent"]["id"]
        ids = [(await c.post(f"/api/agents/{agent_id}/execute")).json()["id"] for _ in range(2)]
        stopped = (await c.post(f"/api/agents/{agent_id}/stop")).json()["stopped"]
        assert sorted(stopped) == sorted(ids)
        assert {(await c.get(f"/api/executions/{i}")).json()["status"] for i in ids} == {"cancelled"}


def test_committed_openapi_is_current():
    from pathlib import Path

    from coherex.api.app import create_app

    committed = Path(__file__).resolve().parents[3] / "schema" / "openapi.json"
    current = json.dumps(create_app(chat=False).openapi(), indent=2, sort_keys=True) + "\n"
    assert committed.exists() and committed.read_text() == current, (
        "schema/openapi.json is stale: run `coherex openapi > schema/openapi.json`"
    )


async def test_logs_stream_a_sub_agents_steps_under_the_step_that_called_it(api, keys, fake_llm, drain):
    from coherex.testing.fake_openai import ToolCall

    alpha, _ = keys
    helper = "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: helper}\nspec: {instructions: Help.}\n"
    boss = (
        "apiVersion: coherex/v1\nkind: Agent\nmetadata: {name: boss}\n"
        "spec:\n  instructions: Delegate.\n  tools:\n    - use: agent\n      agent: helper\n"
    )
    fake_llm.script([ToolCall("helper", {}), Text("helper says 42"), Text("boss says 42")])
    async with api.client(alpha) as c:
        assert (await c.post("/api/agents", json={"spec": helper})).status_code == 201
        boss_id = (await c.post("/api/agents", json={"spec": boss})).json()["agent"]["id"]
        execution_id = (await c.post(f"/api/agents/{boss_id}/execute")).json()["id"]
        await drain()
        assert (await c.get(f"/api/executions/{execution_id}")).json()["status"] == "completed"
        steps = []
        async with c.stream("GET", f"/api/agents/{boss_id}/logs") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("data:") and '"seq"' in line:
                    steps.append(json.loads(line[5:]))
    order = [(s["type"], s["name"], s["execution_id"] == execution_id) for s in steps]
    link = order.index(("log", "sub_agent", True))
    # the helper's own LLM step and status come right after the link, before the boss's tool result
    assert [o[:2] for o in order[link + 1 : link + 3]] == [
        ("llm_call", "gpt-4o-mini"),
        ("status", "completed"),
    ]
    assert not any(o[2] for o in order[link + 1 : link + 3])
    assert order[link + 3][:2] == ("tool_result", "helper") and order[link + 3][2]
    assert "helper says 42" in steps[link + 1]["payload"]["content"]
