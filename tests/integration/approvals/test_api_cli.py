"""Deciding over the HTTP API (real uvicorn server) and the CLI: list what waits, approve, edit,
reject; a viewer's key is refused with 403; the SSE stream shows the approval events."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from coherex.store.db import Identity
from coherex.testing.api import ApiServer
from coherex.testing.fake_openai import Text

from .conftest import spec
from .test_approvals import POST


@pytest.fixture
def api(world, monkeypatch):
    from coherex.settings import reset_settings_cache

    monkeypatch.setenv("OPENAI_BASE_URL", world.llm.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", world.llm.api_key)
    reset_settings_cache()
    with ApiServer() as server:
        yield server
    reset_settings_cache()


async def _key(world, email: str | None = None, role: str = "member") -> str:
    user_id = world.user_id
    async with world.db.session(Identity.system()) as s:
        if email:
            user_id = (await s.users.create(email, password="correct horse")).id
            await s.members.add(world.team_id, user_id, role)
        return (await s.api_keys.create(world.team_id, "tests", user_id=user_id))[1]


async def _drain() -> None:
    from coherex.jobs import run_worker
    from coherex.settings import get_settings

    await run_worker(get_settings(), concurrency=2, wait=False, install_signal_handlers=False)


async def test_the_api_lists_and_decides_and_refuses_a_viewer(world, api):
    agent = await world.agent(spec())
    world.llm.script([POST, Text("Posted.")])
    owner, viewer = await _key(world), await _key(world, "vic@example.com", "viewer")
    async with api.client(owner) as http:
        started = await http.post(f"/api/agents/{agent.id}/execute", json={"inputs": {}})
        assert started.status_code in (200, 201, 202), started.text
        execution_id = started.json()["id"]
        await _drain()  # a real worker runs it until it waits
        waiting = (await http.get("/api/approvals")).json()
        assert [(w["execution_id"], w["tool_name"], w["agent_name"]) for w in waiting] == [
            (execution_id, "slack_post_message", "poster")
        ]
        approval_id = waiting[0]["id"]
        assert (await http.get(f"/api/executions/{execution_id}")).json()["status"] == "waiting_approval"
        listed = await http.get("/api/executions", params={"status": "waiting_approval"})
        assert [e["id"] for e in listed.json()] == [execution_id]

        async with api.client(viewer) as as_viewer:
            refused = await as_viewer.post(f"/api/approvals/{approval_id}", json={"decision": "approve"})
            assert refused.status_code == 403 and "member role" in refused.json()["error"]["message"]
            assert len((await as_viewer.get("/api/approvals")).json()) == 1  # a viewer may look
        bad = await http.post(
            f"/api/approvals/{approval_id}", json={"decision": "edit", "arguments": {"channel": "#ops"}}
        )
        assert bad.status_code == 422 and "text" in bad.json()["error"]["message"]
        ok = await http.post(
            f"/api/approvals/{approval_id}",
            json={"decision": "edit", "arguments": {"channel": "#ops", "text": "Edited over the API."}},
        )
        assert ok.status_code == 200 and ok.json()["resumed"] is True
        again = await http.post(f"/api/approvals/{approval_id}", json={"decision": "approve"})
        assert again.status_code == 409
        await _drain()
        final = (await http.get(f"/api/executions/{execution_id}")).json()
        assert final["status"] == "completed"
        assert world.posted() == ["Edited over the API."]
        stream = await http.get(
            f"/api/agents/{agent.id}/logs", params={"execution_id": execution_id, "follow": "false"}
        )
        steps = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: ")]
        types = [s.get("type") for s in steps]
        assert "approval_requested" in types and "approval_decided" in types


def coherex(env, *args):
    done = subprocess.run(
        [sys.executable, "-m", "coherex", *args], env=env, capture_output=True, text=True, timeout=60
    )
    return done.returncode, done.stdout + done.stderr


async def test_the_cli_lists_approves_and_rejects(world, settings_env):
    env = {**os.environ, **settings_env, "COHEREX_USER": "acme@example.com", "COHEREX_TEAM": "acme"}
    agent = await world.agent(spec())
    runtime = world.runtime()
    ids = []
    for _ in range(2):
        world.llm.script([POST])  # each run waits after its first step
        ex = await runtime.create(world.owner, world.team_id, agent)
        await runtime.run(ex.id)
        ids.append((await world.pending(ex.id))[0].id)
    code, out = coherex(env, "approvals", "list")
    assert code == 0 and "slack_post_message" in out and str(ids[0])[:8] in out, out
    code, out = coherex(env, "approvals", "list", "--json")
    assert sorted(a["id"] for a in json.loads(out)) == sorted(map(str, ids))
    code, out = coherex(env, "approvals", "approve", str(ids[1]), "--args", "{not json")
    assert code == 1 and "--args is not valid JSON" in out
    code, out = coherex(env, "approvals", "approve", str(ids[0])[:8])
    assert code == 0 and "approved" in out and "The run goes on" in out, out
    code, out = coherex(env, "approvals", "reject", str(ids[1]), "--message", "not today")
    assert code == 0 and "rejected" in out, out
    code, out = coherex(env, "approvals", "approve", str(ids[1]))
    assert code == 1 and "already rejected" in out and "Traceback" not in out
    code, out = coherex(env, "approvals", "list")
    assert code == 0 and "Nothing waits" in out
    code, out = coherex(env, "approvals", "team-default", "sometimes")
    assert code == 1 and "never or writes" in out
    code, out = coherex(env, "approvals", "team-default", "writes")
    assert code == 0 and "writes" in out, out
    async with world.db.session(Identity.system()) as s:
        assert await s.approvals.team_default(world.team_id) == "writes"
        viewer = await s.users.create("vic@example.com", password="correct horse")
        await s.members.add(world.team_id, viewer.id, "viewer")
    code, out = coherex({**env, "COHEREX_USER": "vic@example.com"}, "approvals", "team-default", "never")
    assert code == 1 and "admin role" in out
    for approval_id in ids:
        async with world.db.session(Identity.system()) as s:
            row = await s.approvals.get(approval_id)
        assert row.decided_by == world.user_id


async def test_a_team_channel_hears_about_a_waiting_call_with_how_to_decide(world, settings_env):
    env = {
        **os.environ,
        **settings_env,
        "COHEREX_USER": "acme@example.com",
        "COHEREX_TEAM": "acme",
        "COHEREX_PUBLIC_URL": "https://coherex.example.com",
    }
    approvals_channel = world.saas.slack.add_channel("approvals")
    code, out = coherex(env, "approvals", "notify", "no-such-source", "#approvals")
    assert code == 1 and "not a Slack data source" in out
    code, out = coherex(env, "approvals", "notify", "team-slack", "#approvals")
    assert code == 0, out
    agent = await world.agent(spec())
    world.llm.script([POST])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent, trigger="schedule")
    assert (await runtime.run(ex.id)).status == "waiting_approval"
    (approval,) = await world.pending(ex.id)
    (note,) = [m["text"] for m in world.saas.slack.messages[approvals_channel]]
    assert "poster" in note and "slack_post_message" in note and f"approve {str(approval.id)[:8]}" in note
    assert world.posted() == []  # the agent's own call still waits
    code, out = coherex(env, "approvals", "notify", "--off")
    assert code == 0
    async with world.db.session(Identity.system()) as s:
        assert await s.approvals.team_notify(world.team_id) is None
