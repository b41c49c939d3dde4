"""Approvals with real worker processes: an unattended run pauses on a worker and resumes on
another, none lost and none acting twice when a worker is killed while the run waits or right
after the approved call was made."""

from __future__ import annotations

from coherex.runtime.approvals import decide
from coherex.testing.fake_openai import Slow, Text

from .conftest import spec
from .test_approvals import POST


async def test_a_scheduled_run_waits_on_one_worker_and_resumes_on_another_after_it_was_killed(
    world, start_worker
):
    agent = await world.agent(spec())
    world.llm.script([POST, Text("Posted.")])
    first = start_worker()
    ex = await world.runtime().create(world.owner, world.team_id, agent, trigger="schedule", queue=True)
    row = await world.wait_for(ex.id, lambda r: r.status == "waiting_approval")
    assert row.status == "waiting_approval" and row.worker_id is None
    first.kill()  # SIGKILL while the run waits: it holds nothing of the worker
    first.wait(10)
    (approval,) = await world.pending(ex.id)
    await decide(world.db, world.owner, approval.id, "approve")
    start_worker()
    final = await world.wait_for(ex.id, lambda r: r.finished)
    assert final.status == "completed", final.error
    assert world.posted() == ["Deploy is done."]
    assert len(world.llm.chat_requests) == 2  # the first step was not run again


async def test_a_worker_killed_right_after_the_approved_call_does_not_make_it_twice(world, start_worker):
    agent = await world.agent(spec())
    # the step after the post hangs on the first worker, which is killed there; the next worker gets an answer
    world.llm.script([POST, Slow(120, Text("never read")), Text("Posted.")])
    first = start_worker()
    ex = await world.runtime().create(world.owner, world.team_id, agent, trigger="webhook", queue=True)
    await world.wait_for(ex.id, lambda r: r.status == "waiting_approval")
    (approval,) = await world.pending(ex.id)
    await decide(world.db, world.owner, approval.id, "approve")
    deadline_row = await world.wait_for(ex.id, lambda r: len(world.llm.chat_requests) >= 2, timeout=60)
    assert world.posted() == ["Deploy is done."] and deadline_row.status == "running"
    first.kill()
    first.wait(10)
    start_worker()  # its maintenance finds the dead run (3 missed heartbeats) and runs it again
    final = await world.wait_for(ex.id, lambda r: r.finished, timeout=90)
    assert final.status == "completed", final.error
    assert final.output == {"text": "Posted."}
    assert world.posted() == ["Deploy is done."]  # once
    # the retry gave the model the stored result of the call, not a second call
    told = world.llm.chat_requests[-1].body["messages"][-1]
    assert told["role"] == "tool" and '"ts"' in told["content"]
    results = [e for e in await world.events(ex.id) if e.type == "tool_result"]
    assert len(results) == 2 and all(e.payload["ok"] for e in results)
