"""Sub-agents: a parent agent calls other agents of its team as tools (real runtime, database and
the fake OpenAI server). Each call is an execution of its own, nested under the parent's tool step,
sharing the parent's cost pot; stopping the parent stops the children; cycles are refused."""

from __future__ import annotations

import asyncio

import pytest

from coherex.services.agents import apply_spec
from coherex.spec import SpecInvalid
from coherex.store.db import Identity
from coherex.testing.fake_openai import Reply, Slow, Text, ToolCall

from .conftest import make_spec_yaml


def _callee(name: str, *, inputs: str = "", description: str = "A helper") -> str:
    return make_spec_yaml(name, inputs=inputs).replace("A test agent", description)


def _caller(name: str, *callees: str, limits: str = "") -> str:
    tools = "".join(f"- use: agent\n  agent: {c}\n" for c in callees)
    return make_spec_yaml(name, tools=tools, limits=limits)


async def _events(db, execution_id):
    async with db.session(Identity.system()) as s:
        return await s.executions.events(execution_id)


async def _children(db, execution_id):
    async with db.session(Identity.system()) as s:
        return await s.executions.children(execution_id)


async def test_a_parent_calls_two_sub_agents_and_gets_a_tree_of_runs(db, runtime, make_agent, fake_llm):
    t = make_agent.tenant
    await make_agent(
        _callee("researcher", inputs="    topic: {type: string, description: what to research}\n")
    )
    await make_agent(_callee("writer", description="Writes the summary"))
    boss = await make_agent(_caller("boss", "researcher", "writer"))
    fake_llm.script(
        [
            Reply(
                tool_calls=[
                    ToolCall("researcher", {"topic": "tides"}, id="c1"),
                    ToolCall("researcher", {"topic": "moons"}, id="c2"),
                    ToolCall("writer", {}, id="c3"),
                ]
            ),
            Text("Tides follow the moon."),
            Text("Jupiter has 95 moons."),
            Text("Summary written."),
            Text("All three answered."),
        ]
    )
    ex = await runtime.create(t.identity, t.team_id, boss)
    streamed = []
    final = await runtime.run(ex.id, listeners=[streamed.append])
    assert final.status == "completed" and final.output["text"] == "All three answered."

    # the model saw each callee as a tool: its description and its inputs as parameters
    offered = {f["function"]["name"]: f["function"] for f in fake_llm.chat_requests[0].body["tools"]}
    assert set(offered) == {"researcher", "writer"}
    assert "Writes the summary" in offered["writer"]["description"]
    assert offered["researcher"]["parameters"]["properties"]["topic"]["description"] == "what to research"

    children = await _children(db, ex.id)
    assert [c.inputs.get("topic") for c in children] == ["tides", "moons", None]
    assert all(c.status == "completed" and c.trigger == "agent" and c.depth == 1 for c in children)
    assert [c.output["text"] for c in children] == [
        "Tides follow the moon.",
        "Jupiter has 95 moons.",
        "Summary written.",
    ]
    # each child hangs under the tool step that called it, and the step's result is the child's answer
    events = await _events(db, ex.id)
    calls = {e.payload["id"]: e for e in events if e.type == "tool_call"}
    assert [c.parent_event_seq for c in children] == [calls["c1"].seq, calls["c2"].seq, calls["c3"].seq]
    links = [e for e in events if e.type == "log" and e.name == "sub_agent"]
    assert [(e.parent_seq, e.payload["execution_id"]) for e in links] == [
        (c.parent_event_seq, str(c.id)) for c in children
    ]
    results = [e for e in events if e.type == "tool_result"]
    assert all(r.payload["ok"] for r in results)
    assert "Jupiter has 95 moons." in results[1].payload["content"]
    # listeners of the parent saw the children's steps as they happened (their own execution ids)
    child_ids = {c.id for c in children}
    assert {e.execution_id for e in streamed} == {ex.id} | child_ids
    # the callee's cost stays its own: the parent's row counts only its own LLM calls
    assert final.tokens_in == sum(e.tokens_in for e in events)


async def test_a_caller_keeps_the_callee_version_it_was_saved_with(db, runtime, make_agent, fake_llm):
    t = make_agent.tenant
    await make_agent(_callee("helper"))
    boss = await make_agent(_caller("boss", "helper"))
    await make_agent(_callee("helper", description="A changed helper"))  # helper v2, after boss was saved
    fake_llm.script([Reply(tool_calls=[ToolCall("helper", {})]), Text("v1 here"), Text("done")])
    ex = await runtime.create(t.identity, t.team_id, boss)
    assert (await runtime.run(ex.id)).status == "completed"
    assert [c.agent_version for c in await _children(db, ex.id)] == [1]
    assert "A helper" in fake_llm.chat_requests[0].body["tools"][0]["function"]["description"]


async def test_the_cost_pot_is_shared_and_an_empty_pot_stops_the_child(db, runtime, make_agent, fake_llm):
    t = make_agent.tenant
    await make_agent(_callee("spender"))
    boss = await make_agent(_caller("boss", "spender", limits="{maxCostUsd: 0.001}"))
    # gpt-4o-mini: $0.15 per 1M prompt tokens, $0.60 per 1M completion tokens
    fake_llm.script(
        [
            Reply(
                tool_calls=[ToolCall("spender", {})], prompt_tokens=1000, completion_tokens=100
            ),  # $0.00021
            Text("expensive thought", prompt_tokens=6000, completion_tokens=0),  # $0.0009: pot is empty
            Text("giving up", prompt_tokens=10, completion_tokens=10),
        ]
    )
    ex = await runtime.create(t.identity, t.team_id, boss)
    final = await runtime.run(ex.id)
    (child,) = await _children(db, ex.id)
    # the child's own limit ($1) was far away: the parent's pot stopped it
    assert child.status == "failed" and "sub-agents cost $0.0011 together" in child.error
    assert "the calling run's limits.maxCostUsd ($0.001)" in child.error
    result = next(e for e in await _events(db, ex.id) if e.type == "tool_result")
    assert not result.payload["ok"] and "did not answer (failed)" in result.payload["content"]
    assert final.status == "failed" and "this run's limits.maxCostUsd" in final.error


async def test_stopping_the_parent_stops_its_child(db, runtime, make_agent, fake_llm):
    t = make_agent.tenant
    await make_agent(_callee("sleeper"))
    boss = await make_agent(_caller("boss", "sleeper"))
    fake_llm.script([Reply(tool_calls=[ToolCall("sleeper", {})]), Slow(60, Text("too late"))])
    ex = await runtime.create(t.identity, t.team_id, boss)
    run = asyncio.create_task(runtime.run(ex.id))
    for _ in range(200):  # until the child's LLM call is under way
        children = await _children(db, ex.id)
        if children and children[0].status == "running" and len(fake_llm.chat_requests) == 2:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the child never started")
    await runtime.stop(t.identity, ex.id)
    final = await asyncio.wait_for(run, 30)
    (child,) = await _children(db, ex.id)
    assert final.status == "cancelled"
    assert child.status == "cancelled" and child.finished_at is not None  # not left running


async def test_cycles_unknown_agents_and_wrong_inputs_are_refused_when_saved(db, make_agent):
    t = make_agent.tenant
    await make_agent(_callee("alpha"))
    await make_agent(_caller("beta", "alpha"))  # beta v1 calls alpha v1

    async def save(text):
        async with db.session(t.identity) as s:
            return await apply_spec(s, t.team_id, text)

    with pytest.raises(SpecInvalid) as err:  # alpha v2 calling beta: beta's pinned version calls alpha
        await save(_caller("alpha", "beta"))
    assert "spec.tools[0].agent: calling 'beta' makes a cycle: alpha → beta → alpha" in str(err.value)
    with pytest.raises(SpecInvalid, match="'gamma' cannot call itself"):
        await save(_caller("gamma", "gamma"))
    with pytest.raises(SpecInvalid, match=r"no agent named 'alpah' in this team \(did you mean alpha\?\)"):
        await save(_caller("gamma", "alpah"))
    bad_input = _caller("gamma", "alpha").replace(
        "agent: alpha\n", "agent: alpha\n      with: {town: Rome}\n"
    )
    with pytest.raises(SpecInvalid, match="agent 'alpha' has no input 'town'"):
        await save(bad_input)
    with pytest.raises(SpecInvalid, match="agent 'alpha' has no version 7"):
        await save(_caller("gamma", "alpha").replace("agent: alpha\n", "agent: alpha\n      version: 7\n"))
    # nothing of those was saved
    async with db.session(t.identity) as s:
        assert await s.agents.get_by_name(t.team_id, "gamma") is None
        assert (await s.agents.get_by_name(t.team_id, "alpha")).current_version == 1


async def test_an_agent_of_another_team_cannot_be_called(db, make_agent, two_teams):
    _, other = two_teams
    await make_agent(_callee("secret-helper"))
    async with db.session(other.identity) as s:
        with pytest.raises(SpecInvalid, match="no agent named 'secret-helper' in this team"):
            await apply_spec(s, other.team_id, _caller("thief", "secret-helper"))


async def test_nesting_deeper_than_the_limit_is_a_tool_error(db, llm, make_agent, fake_llm):
    from coherex.runtime import Runtime
    from coherex.settings import get_settings

    t = make_agent.tenant
    await make_agent(_callee("leaf"))
    await make_agent(_caller("middle", "leaf"))
    top = await make_agent(_caller("top", "middle"))
    shallow = Runtime(db, llm=llm, settings=get_settings().model_copy(update={"max_agent_depth": 1}))
    fake_llm.script(
        [
            Reply(tool_calls=[ToolCall("middle", {})]),
            Reply(tool_calls=[ToolCall("leaf", {})]),  # middle (depth 1) tries leaf (depth 2)
            Text("leaf was out of reach"),
            Text("done"),
        ]
    )
    ex = await shallow.create(t.identity, t.team_id, top)
    assert (await shallow.run(ex.id)).status == "completed"
    (middle,) = await _children(db, ex.id)
    assert await _children(db, middle.id) == []
    result = next(e for e in await _events(db, middle.id) if e.type == "tool_result")
    assert "would nest agents 2 deep; the limit is 1 (COHEREX_MAX_AGENT_DEPTH)" in result.payload["content"]


async def test_a_follower_sees_the_tree_of_runs_live_in_order_and_stops_with_the_root(
    db, runtime, make_agent, fake_llm
):
    """What `coherex logs -f` and the API's logs stream show of a run with sub-agents: each one's
    steps right after the step that started it, followed while they happen, ending with the root."""
    from coherex.services.follow import follow_tree
    from coherex.store.models import Execution

    t = make_agent.tenant
    await make_agent(_callee("deep"))
    await make_agent(_caller("helper", "deep"))
    boss = await make_agent(_caller("boss", "helper"))
    fake_llm.script(
        [
            Reply(tool_calls=[ToolCall("helper", {})]),
            Reply(tool_calls=[ToolCall("deep", {})]),
            Slow(1, Text("deep says 42")),  # the follower waits on the innermost run meanwhile
            Text("helper says 42"),
            Text("boss says 42"),
        ]
    )
    ex = await runtime.create(t.identity, t.team_id, boss)

    async def watch():
        return [item async for item in follow_tree(db, t.identity, ex.id)]

    watching = asyncio.create_task(watch())  # from before the first step
    final = await runtime.run(ex.id)
    seen = await asyncio.wait_for(watching, timeout=30)
    assert final.status == "completed"
    assert isinstance(seen[-1], Execution) and seen[-1].id == ex.id and seen[-1].status == "completed"
    (helper,) = await _children(db, ex.id)
    (deep,) = await _children(db, helper.id)
    who = {ex.id: "boss", helper.id: "helper", deep.id: "deep"}
    assert [(who[e.execution_id], e.type, e.name) for e in seen[:-1]] == [
        ("boss", "llm_call", "gpt-4o-mini"),
        ("boss", "tool_call", "helper"),
        ("boss", "log", "sub_agent"),
        ("helper", "llm_call", "gpt-4o-mini"),
        ("helper", "tool_call", "deep"),
        ("helper", "log", "sub_agent"),
        ("deep", "llm_call", "gpt-4o-mini"),
        ("deep", "status", "completed"),
        ("helper", "tool_result", "deep"),
        ("helper", "llm_call", "gpt-4o-mini"),
        ("helper", "status", "completed"),
        ("boss", "tool_result", "helper"),
        ("boss", "llm_call", "gpt-4o-mini"),
        ("boss", "status", "completed"),
    ]
    # read afterwards (`coherex logs` without -f): the same tree from what is stored
    stored = [item async for item in follow_tree(db, t.identity, ex.id, live=False)]
    assert [(x.execution_id, x.seq) for x in stored[:-1]] == [(x.execution_id, x.seq) for x in seen[:-1]]
