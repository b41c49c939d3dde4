"""The agent loop against the fake OpenAI server through the real `openai` client."""

from __future__ import annotations

import asyncio

import pytest

from coherex.errors import UserError
from coherex.runtime import ConcurrencyLimited, QuotaExceeded
from coherex.store.db import Identity
from coherex.testing.fake_openai import Error, Reply, Slow, Text, ToolCall


async def _events(db, execution_id):
    async with db.session(Identity.system()) as s:
        return await s.executions.events(execution_id)


async def test_text_answer_completes_with_tokens_and_cost(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml())
    fake_llm.script([Text("Paris is sunny.", prompt_tokens=1000, completion_tokens=500)])
    ex = await runtime.create(make_agent.tenant.identity, make_agent.tenant.team_id, agent, inputs={})
    streamed = []
    final = await runtime.run(ex.id, listeners=[lambda e: streamed.append(e.type)])
    assert final.status == "completed" and final.output == {"text": "Paris is sunny."}
    assert (final.tokens_in, final.tokens_out) == (1000, 500)
    # gpt-4o-mini: $0.15 / 1M in, $0.60 / 1M out
    assert float(final.cost_usd) == pytest.approx(1000 * 0.15e-6 + 500 * 0.60e-6)
    events = await _events(db, ex.id)
    assert [e.type for e in events] == ["llm_call", "status"] == streamed
    # the instructions got the input's default, and the model saw the system prompt
    sent = fake_llm.chat_requests[0].body["messages"]
    assert "Do the task for Paris." in sent[0]["content"]


async def test_inputs_are_checked_before_anything_runs(db, runtime, make_agent, spec_yaml):
    agent = await make_agent(spec_yaml(inputs="    days: {type: integer}\n"))
    t = make_agent.tenant
    with pytest.raises(UserError) as err:
        await runtime.create(t.identity, t.team_id, agent, inputs={"days": "many", "colour": "red"})
    assert "unknown input 'colour'" in str(err.value) and "'days' must be of type integer" in str(err.value)
    with pytest.raises(UserError, match="input 'days' is required"):
        await runtime.create(t.identity, t.team_id, agent, inputs={})
    ok = await runtime.create(t.identity, t.team_id, agent, inputs={"days": "3"})
    assert ok.inputs == {"city": "Paris", "days": 3}


async def test_llm_failing_twice_then_succeeding_completes(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml())
    fake_llm.script([Error(500), Error(500), Text("done")])
    ex = await runtime.create(make_agent.tenant.identity, make_agent.tenant.team_id, agent)
    final = await runtime.run(ex.id)
    assert final.status == "completed" and final.output == {"text": "done"}
    assert len(fake_llm.chat_requests) == 3


async def test_llm_always_failing_fails_with_a_reason_and_nothing_stuck(
    db, runtime, make_agent, spec_yaml, fake_llm
):
    agent = await make_agent(spec_yaml())
    fake_llm.always(Error(500, message="upstream exploded"))
    ex = await runtime.create(make_agent.tenant.identity, make_agent.tenant.team_id, agent)
    final = await runtime.run(ex.id)
    assert final.status == "failed" and final.finished_at is not None
    # the reason says which server failed, how, and that the client gave up after its 3 attempts
    # (whole: a data-source DSN seen earlier in the process on this host hides only its password)
    assert final.error == (
        f"the LLM server at {fake_llm.base_url} failed (500): upstream exploded (gave up after 3 attempts)"
    )
    assert len(fake_llm.chat_requests) == 3
    async with db.session(Identity.system()) as s:
        assert await s.executions.list(status="running") == []
    assert [e.type for e in await _events(db, ex.id)][-2:] == ["error", "status"]


async def test_workers_retry_a_backend_failure_but_not_an_agents_own(
    db, llm, make_agent, spec_yaml, fake_llm
):
    """As a worker runs it (retry_backend_errors): an LLM that is down puts the run back to pending
    for another attempt, until COHEREX_MAX_ATTEMPTS; a run that fails by itself is final at once."""
    from coherex.jobs import enqueue
    from coherex.runtime import Runtime
    from coherex.settings import get_settings

    runtime = Runtime(db, llm=llm, settings=get_settings().model_copy(update={"max_attempts": 2}))
    agent = await make_agent(spec_yaml())
    t = make_agent.tenant
    fake_llm.always(Error(503, message="upstream down"))
    ex = await runtime.create(t.identity, t.team_id, agent)
    again = await runtime.run(ex.id, retry_backend_errors=True)
    assert again.status == "pending" and again.attempts == 1
    assert not await enqueue(db, ex.id), (
        "the retry's job should be waiting already (queued with the re-queue)"
    )
    assert any(
        "retrying" in e.payload.get("message", "") for e in await _events(db, ex.id) if e.type == "log"
    )
    final = await runtime.run(ex.id, retry_backend_errors=True)  # the last attempt: no more retries
    assert final.status == "failed" and final.attempts == 2 and "503" in final.error

    looping = await make_agent(spec_yaml(name="looping", limits="{maxSteps: 2}"))
    fake_llm.reset()
    fake_llm.always(ToolCall("nope", {}))
    own = await runtime.run(
        (await runtime.create(t.identity, t.team_id, looping)).id, retry_backend_errors=True
    )
    assert own.status == "failed" and own.attempts == 1  # its own failure: final, not retried


async def test_max_steps_stops_a_looping_model(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml(limits="{maxSteps: 3}"))
    fake_llm.always(ToolCall("does_not_exist", {}))
    ex = await runtime.create(make_agent.tenant.identity, make_agent.tenant.team_id, agent)
    final = await runtime.run(ex.id)
    assert final.status == "failed" and "limits.maxSteps" in final.error
    assert len(fake_llm.chat_requests) == 3
    results = [e for e in await _events(db, ex.id) if e.type == "tool_result"]
    assert len(results) == 3 and "There is no tool 'does_not_exist'" in results[0].payload["content"]
    # the tool error went back to the model as a tool message
    assert fake_llm.chat_requests[1].body["messages"][-1]["role"] == "tool"


async def test_max_cost_stops_a_run(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml(limits="{maxCostUsd: 0.001}"))
    # $0.00075 a call (5000 prompt tokens of gpt-4o-mini): the second call crosses $0.001
    fake_llm.always(Reply(tool_calls=[ToolCall("nothing", {})], prompt_tokens=5000, completion_tokens=0))
    ex = await runtime.create(make_agent.tenant.identity, make_agent.tenant.team_id, agent)
    final = await runtime.run(ex.id)
    assert final.status == "failed" and "limits.maxCostUsd" in final.error
    assert float(final.cost_usd) == pytest.approx(0.0015)
    assert len(fake_llm.chat_requests) == 2


async def test_timeout_stops_a_slow_run(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml(limits="{timeoutSeconds: 1}"))
    fake_llm.script([Slow(5, Text("too late"))])
    ex = await runtime.create(make_agent.tenant.identity, make_agent.tenant.team_id, agent)
    final = await runtime.run(ex.id)
    assert final.status == "timed_out" and "limits.timeoutSeconds" in final.error


async def test_stop_cancels_a_running_execution(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml())
    fake_llm.script([Slow(10, Text("never"))])
    t = make_agent.tenant
    ex = await runtime.create(t.identity, t.team_id, agent)
    task = asyncio.create_task(runtime.run(ex.id))
    while True:  # wait until it is running
        async with db.session(t.identity) as s:
            if (await s.executions.get(ex.id)).status == "running":
                break
        await asyncio.sleep(0.05)
    await runtime.stop(t.identity, ex.id)
    final = await asyncio.wait_for(task, 5)
    assert final.status == "cancelled"
    async with db.session(t.identity) as s:
        assert [a.action for a in await s.audit.list(t.team_id)][:1] == ["execution.stop"]


async def test_quota_refuses_new_runs(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml())
    t = make_agent.tenant
    async with db.session(t.identity) as s:
        await s.teams.set_quotas(t.team_id, executions_month=1, cost_month_usd=None, max_concurrent_runs=None)
    await runtime.create(t.identity, t.team_id, agent)
    with pytest.raises(QuotaExceeded, match="used its 1 executions"):
        await runtime.create(t.identity, t.team_id, agent)


async def test_monthly_budget_refuses_runs_once_spent(db, runtime, make_agent, spec_yaml, fake_llm):
    agent = await make_agent(spec_yaml())
    t = make_agent.tenant
    async with db.session(t.identity) as s:
        await s.teams.set_quotas(
            t.team_id, executions_month=None, cost_month_usd=0.01, max_concurrent_runs=None
        )
    fake_llm.script([Text("expensive", prompt_tokens=100_000)])  # gpt-4o-mini: $0.015
    first = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert first.status == "completed" and float(first.cost_usd) > 0.01
    with pytest.raises(QuotaExceeded, match=r"has spent \$0.02 of its \$0.01 monthly budget"):
        await runtime.create(t.identity, t.team_id, agent)


async def test_concurrent_runs_wait_for_the_teams_limit(db, runtime, make_agent, spec_yaml, fake_llm):
    """With max_concurrent_runs=1 a second run is not started while the first is going (the worker
    puts it back for later) and starts fine once the first has ended."""
    agent = await make_agent(spec_yaml())
    t = make_agent.tenant
    async with db.session(t.identity) as s:
        await s.teams.set_quotas(t.team_id, executions_month=None, cost_month_usd=None, max_concurrent_runs=1)
    fake_llm.script([Slow(10, Text("slow")), Text("second")])
    first = await runtime.create(t.identity, t.team_id, agent)
    second = await runtime.create(t.identity, t.team_id, agent)
    running = asyncio.create_task(runtime.run(first.id))
    while True:
        async with db.session(t.identity) as s:
            if (await s.executions.get(first.id)).status == "running":
                break
        await asyncio.sleep(0.05)
    with pytest.raises(ConcurrencyLimited, match="already has 1 runs going"):
        await runtime.run(second.id)
    async with db.session(t.identity) as s:
        assert (await s.executions.get(second.id)).status == "pending"
    await runtime.stop(t.identity, first.id)
    assert (await asyncio.wait_for(running, 5)).status == "cancelled"
    assert (await runtime.run(second.id)).output == {"text": "second"}


async def test_dead_worker_is_requeued_then_failed(db, runtime, make_agent, spec_yaml):
    agent = await make_agent(spec_yaml())
    t = make_agent.tenant
    ex = await runtime.create(t.identity, t.team_id, agent)
    async with db.session(Identity.system()) as s:
        await s.executions.start(ex.id, worker_id="dead-worker")
    assert [r.status for r in await runtime.recover_stale(older_than_seconds=0)] == ["pending"]
    for _ in range(2):
        async with db.session(Identity.system()) as s:
            await s.executions.start(ex.id, worker_id="dead-again")
        await runtime.recover_stale(older_than_seconds=0, max_attempts=3)
    async with db.session(Identity.system()) as s:
        final = await s.executions.get(ex.id)
    assert final.status == "failed" and "stopped responding 3 times" in final.error


async def test_platform_secrets_never_reach_events_or_the_runs_output(
    db, llm, make_agent, spec_yaml, fake_llm
):
    """A model that repeats the platform's own secrets (the OpenAI key, the database URL with its
    password) — e.g. after a prompt injection — has them redacted from every recorded step."""
    import json

    from pydantic import SecretStr

    from coherex.runtime import Runtime
    from coherex.settings import get_settings

    key, url = "sk-platform-key-0123456789abcdef", "postgresql://coherex:db-password-42@db.internal/coherex"
    settings = get_settings().model_copy(
        update={"openai_api_key": SecretStr(key), "database_url": SecretStr(url)}
    )
    runtime = Runtime(db, llm=llm, settings=settings)
    agent = await make_agent(spec_yaml())
    fake_llm.script([Text(f"Sure: the key is {key} and the database is {url}")])
    t = make_agent.tenant
    final = await runtime.run((await runtime.create(t.identity, t.team_id, agent)).id)
    assert final.status == "completed" and final.output["text"].startswith("Sure: the key is ")
    recorded = json.dumps(final.output) + json.dumps([e.payload for e in await _events(db, final.id)])
    assert "llm_call" in [e.type for e in await _events(db, final.id)]
    assert key not in recorded and "db-password-42" not in recorded
