"""A sub-agent whose call needs approval: the child pauses durably, its caller (up to the root)
waits with it, the approval is listed like any other, and a decision resumes the root, whose tool
step runs the same child on to its answer. Real Postgres, runtime, Slack client against the fake
Slack, the fake LLM over HTTP, a real API server and the real CLI."""

from __future__ import annotations

import asyncio
import os
import textwrap

from coherex.runtime.approvals import decide, expire_overdue
from coherex.store.db import Identity
from coherex.testing.fake_openai import Reply, Text, ToolCall

from .conftest import spec
from .test_api_cli import _drain, _key, api, coherex  # noqa: F401 - `api` is a fixture
from .test_approvals import POST

ASK_POSTER = ToolCall("poster", {}, id="call_poster")


def boss(limits: str = "") -> str:
    text = textwrap.dedent("""\
        apiVersion: coherex/v1
        kind: Agent
        metadata: {name: boss}
        spec:
          instructions: Ask the poster to post.
          tools:
            - use: agent
              agent: poster
        """)
    return text + (f"  limits: {limits}\n" if limits else "")


async def children(world, execution_id):
    async with world.db.session(Identity.system()) as s:
        return await s.executions.children(execution_id)


async def waiting_tree(world, boss_limits: str = "", poster_limits: str = ""):
    """boss → poster, run until the poster's Slack post waits: (runtime, root, child, approval)."""
    await world.agent(spec(limits=poster_limits))
    agent = await world.agent(boss(boss_limits))
    world.llm.script([ASK_POSTER, POST])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent)
    root = await runtime.run(ex.id)
    (child,) = await children(world, ex.id)
    (approval,) = await world.pending(child.id)
    return runtime, root, child, approval


async def test_the_root_waits_with_its_child_and_approve_finishes_both_outside_the_timeout(world):
    runtime, root, child, approval = await waiting_tree(world, boss_limits="{timeoutSeconds: 4}")
    # both wait, durably, with no worker; nothing was posted
    assert root.status == "waiting_approval" and root.worker_id is None and root.finished_at is None
    assert child.status == "waiting_approval" and world.posted() == []
    assert approval.tool_name == "slack_post_message" and approval.arguments["text"] == "Deploy is done."
    # what waits under the root is the child's call, and the root's status says whom it waits for
    async with world.db.session(world.owner) as s:
        under_root = await s.approvals.pending(world.team_id, execution_id=root.id)
    assert [(a.id, a.agent_name) for a in under_root] == [(approval.id, "poster")]
    status = [e for e in await world.events(root.id) if e.type == "status"][-1]
    assert status.payload["approvals"] == [str(approval.id)]
    assert status.payload["waiting_for"] == {"execution_id": str(child.id), "agent": "poster"}
    assert not [e for e in await world.events(root.id) if e.type == "tool_result"]  # no failed call

    await asyncio.sleep(4.5)  # longer than the root's timeoutSeconds: waiting for a person is free
    world.llm.script([Text("Posted it."), Text("The poster posted it.")])
    done = await decide(world.db, world.owner, approval.id, "approve")
    assert done.resumed and done.queued == root.id  # the root gets the job; the child goes on in it
    assert (await world.execution(root.id)).status == "pending"
    final = await runtime.run(root.id)
    assert final.status == "completed", final.error
    assert final.output == {"text": "The poster posted it."}
    assert world.posted() == ["Deploy is done."]  # once
    (child,) = await children(world, root.id)  # the same child went on: no second one
    assert child.status == "completed" and child.output == {"text": "Posted it."}
    events = await world.events(root.id)
    (call,) = [e for e in events if e.type == "tool_call"]  # one step, its result after the wait
    (result,) = [e for e in events if e.type == "tool_result"]
    assert (
        result.parent_seq == call.seq and result.payload["ok"] and "Posted it." in result.payload["content"]
    )
    assert len([e for e in events if e.type == "log" and e.name == "sub_agent"]) == 1
    assert len(world.llm.chat_requests) == 4  # boss, poster, poster after the post, boss: none twice


async def test_a_rejection_refuses_the_childs_call_and_the_parent_goes_on_with_its_answer(world):
    runtime, root, child, approval = await waiting_tree(world)
    world.llm.script([Text("I was not allowed to post."), Text("The poster could not post.")])
    await decide(world.db, world.owner, approval.id, "reject", message="Not today.")
    final = await runtime.run(root.id)
    assert final.status == "completed" and final.output == {"text": "The poster could not post."}
    assert world.posted() == []
    told = world.llm.chat_requests[2].body["messages"][-1]  # the poster read why
    assert told["role"] == "tool" and "rejected" in told["content"] and "Not today." in told["content"]
    (result,) = [e for e in await world.events(root.id) if e.type == "tool_result"]
    assert result.payload["ok"] and "I was not allowed to post." in result.payload["content"]


async def test_a_child_failed_by_the_approval_timeout_is_a_failed_call_of_the_parent(world):
    runtime, root, child, approval = await waiting_tree(
        world, poster_limits="{approvalTimeoutSeconds: 1, onApprovalTimeout: fail}"
    )
    await asyncio.sleep(1.2)
    assert await expire_overdue(world.db) == [child.id]
    assert (await world.execution(child.id)).status == "failed"
    assert (await world.execution(root.id)).status == "pending"  # its caller goes on, told
    world.llm.script([Text("The poster gave up.")])
    final = await runtime.run(root.id)
    assert final.status == "completed" and final.tool_errors == 1  # never shown as a success
    (result,) = [e for e in await world.events(root.id) if e.type == "tool_result"]
    assert not result.payload["ok"] and "did not answer (failed)" in result.payload["content"]
    assert "limits.approvalTimeoutSeconds" in result.payload["content"]


async def test_stopping_the_waiting_root_stops_the_child_and_its_call_no_longer_waits(world):
    runtime, root, child, approval = await waiting_tree(world)
    await runtime.stop(world.owner, root.id)
    assert (await world.execution(root.id)).status == "cancelled"
    assert (await world.execution(child.id)).status == "cancelled"
    async with world.db.session(world.owner) as s:
        assert await s.approvals.pending(world.team_id) == []


async def test_over_the_api_and_the_cli_with_a_real_worker(world, api, settings_env):
    await world.agent(spec())
    agent = await world.agent(boss())
    world.llm.script([ASK_POSTER, POST, Text("Posted it."), Text("The poster posted it.")])
    env = {**os.environ, **settings_env, "COHEREX_USER": "acme@example.com", "COHEREX_TEAM": "acme"}
    async with api.client(await _key(world)) as http:
        started = await http.post(f"/api/agents/{agent.id}/execute", json={"inputs": {}})
        assert started.status_code in (200, 201, 202), started.text
        root_id = started.json()["id"]
        await _drain()  # a real worker runs it until the child waits
        assert (await http.get(f"/api/executions/{root_id}")).json()["status"] == "waiting_approval"
        (waiting,) = (await http.get("/api/approvals", params={"execution_id": root_id})).json()
        assert (waiting["tool_name"], waiting["agent_name"]) == ("slack_post_message", "poster")
        code, out = coherex(env, "ps")
        (boss_row,) = [line for line in out.splitlines() if root_id[:12] in line]
        assert code == 0 and "boss" in boss_row and "waiting approval" in boss_row, out
        code, out = coherex(env, "approvals", "list")
        assert code == 0 and "poster" in out and waiting["id"][:8] in out, out
        code, out = coherex(env, "logs", root_id[:12])
        assert code == 0 and f"coherex approvals approve {waiting['id'][:8]}" in out, out
        decided = await http.post(f"/api/approvals/{waiting['id']}", json={"decision": "approve"})
        assert decided.status_code == 200 and decided.json()["queued_execution_id"] == root_id
        await _drain()
        final = (await http.get(f"/api/executions/{root_id}")).json()
        assert final["status"] == "completed" and final["output"]["text"] == "The poster posted it."
    assert world.posted() == ["Deploy is done."]


async def test_two_levels_deep_the_decision_resumes_the_root_and_each_caller_goes_on(world):
    await world.agent(spec())
    await world.agent(boss().replace("name: boss", "name: middle"))
    top = await world.agent(
        boss().replace("name: boss", "name: top").replace("agent: poster", "agent: middle")
    )
    world.llm.script([ToolCall("middle", {}, id="call_middle"), ASK_POSTER, POST])
    runtime = world.runtime()
    root = await runtime.run((await runtime.create(world.owner, world.team_id, top)).id)
    (middle,) = await children(world, root.id)
    (poster,) = await children(world, middle.id)
    assert [r.status for r in (root, await world.execution(middle.id), poster)] == ["waiting_approval"] * 3
    (approval,) = await world.pending(poster.id)
    async with world.db.session(world.owner) as s:  # listed under the root, two levels down
        assert [a.id for a in await s.approvals.pending(world.team_id, execution_id=root.id)] == [approval.id]
    world.llm.script([Text("Posted."), Text("The poster posted."), Text("Middle says: posted.")])
    done = await decide(world.db, world.owner, approval.id, "approve")
    assert done.queued == root.id
    final = await runtime.run(root.id)
    assert final.status == "completed" and final.output == {"text": "Middle says: posted."}
    assert [(await world.execution(x.id)).status for x in (middle, poster)] == ["completed", "completed"]
    assert world.posted() == ["Deploy is done."]


async def test_an_approved_sub_agent_call_whose_child_then_waits_runs_once_after_both_decisions(world):
    await world.agent(spec())
    agent = await world.agent(boss().replace("agent: poster\n", "agent: poster\n      approval: always\n"))
    world.llm.script([ASK_POSTER])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent)
    assert (await runtime.run(ex.id)).status == "waiting_approval"  # the boss's own call waits first
    (own,) = await world.pending(ex.id)
    assert own.tool_name == "poster" and await children(world, ex.id) == []
    await decide(world.db, world.owner, own.id, "approve")
    world.llm.script([POST])
    assert (await runtime.run(ex.id)).status == "waiting_approval"  # now the poster's post waits
    (child,) = await children(world, ex.id)
    (post,) = await world.pending(child.id)
    world.llm.script([Text("Posted."), Text("Done.")])
    await decide(world.db, world.owner, post.id, "approve")
    final = await runtime.run(ex.id)
    assert final.status == "completed", final.error
    assert world.posted() == ["Deploy is done."] and len(await children(world, ex.id)) == 1
    (result,) = [e for e in await world.events(ex.id) if e.type == "tool_result"]
    assert result.payload["ok"] and "Posted." in result.payload["content"]


async def test_what_the_child_spent_before_it_waited_still_counts_in_the_roots_pot(world):
    # gpt-4o-mini: $0.15 per 1M prompt tokens; each of the poster's steps costs $0.0006
    await world.agent(spec())
    agent = await world.agent(boss("{maxCostUsd: 0.001}"))
    ask = Reply(tool_calls=[ASK_POSTER], prompt_tokens=10, completion_tokens=0)
    post = Reply(tool_calls=[POST], prompt_tokens=4000, completion_tokens=0)
    world.llm.script([ask, post])
    runtime = world.runtime()
    ex = await runtime.create(world.owner, world.team_id, agent)
    await runtime.run(ex.id)
    (child,) = await children(world, ex.id)
    (approval,) = await world.pending(child.id)
    world.llm.script([Text("Posted.", prompt_tokens=4000, completion_tokens=0), Text("Over budget.")])
    await decide(world.db, world.owner, approval.id, "approve")
    await runtime.run(ex.id)
    child = await world.execution(child.id)
    assert child.status == "failed" and "sub-agents cost $0.0012 together" in child.error
