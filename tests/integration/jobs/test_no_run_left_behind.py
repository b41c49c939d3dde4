"""A run that was asked for always ends: its job commits with its row, an orphaned pending row is
queued again, and a run whose process is busy is never taken over by a worker."""

from __future__ import annotations

import asyncio
import time

import psycopg

from coherex.llm.types import ChatResult, Usage
from coherex.runtime import Runtime
from coherex.settings import get_settings
from coherex.store.db import Identity
from coherex.testing.fake_openai import Text


async def _wait_for(db, execution_id, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        async with db.session(Identity.system()) as s:
            row = await s.executions.get(execution_id)
        if predicate(row) or time.monotonic() > deadline:
            return row
        await asyncio.sleep(0.2)


async def _jobs(db_urls, execution_id) -> list[str]:
    async with await psycopg.AsyncConnection.connect(db_urls.admin) as conn:
        cur = await conn.execute(
            "select status::text from procrastinate_jobs where queueing_lock = %s", (str(execution_id),)
        )
        return [r[0] for r in await cur.fetchall()]


async def test_a_queued_execution_commits_with_its_job_and_a_failed_transaction_leaves_neither(
    db, db_urls, queued_agent
):
    tenant, agent = queued_agent
    runtime = Runtime(db)
    ex = await runtime.create(tenant.identity, tenant.team_id, agent, trigger="api", queue=True)
    assert await _jobs(db_urls, ex.id) == ["todo"]
    # a transaction that fails after creating the row (here: right after it) leaves no row and no job
    try:
        async with db.session(tenant.identity) as s:
            doomed = await s.executions.create(tenant.team_id, agent.id, 1, trigger="api", queue=True)
            raise RuntimeError("the request died here")
    except RuntimeError:
        pass
    async with db.session(Identity.system()) as s:
        assert await s.executions.get(doomed.id) is None
    assert await _jobs(db_urls, doomed.id) == []


async def test_another_teams_member_cannot_queue_or_probe_an_execution(db, two_teams, queued_agent):
    tenant, agent = queued_agent
    _, bravo = two_teams
    ex = await Runtime(db).create(tenant.identity, tenant.team_id, agent, trigger="chat")
    async with db.session(bravo.identity) as s:
        assert await s.executions.queue(ex.id) is False
    async with db.session(tenant.identity) as s:
        assert await s.executions.queue(ex.id) is True
        assert await s.executions.queue(ex.id) is False  # one waiting job at most


async def test_a_pending_execution_without_a_job_is_queued_again_and_completes(
    db, db_urls, queued_agent, fake_llm, start_worker, worker_env
):
    """An in-process run whose process died before it started (or any row a job was lost for):
    maintenance gives it a job after the grace period, and a worker runs it."""
    tenant, agent = queued_agent
    fake_llm.always(Text("done late"))
    ex = await Runtime(db).create(tenant.identity, tenant.team_id, agent, trigger="cli")  # no job
    assert await _jobs(db_urls, ex.id) == []
    worker_env["COHEREX_ORPHAN_GRACE_SECONDS"] = "2"
    start_worker()
    row = await _wait_for(db, ex.id, lambda r: r.finished, 60)
    assert row.status == "completed" and row.output == {"text": "done late"} and row.attempts == 1


class BlockingLLM:
    """An in-process model that holds the event loop (as CPU-bound generation can), then answers."""

    def __init__(self, seconds: float):
        self.seconds, self.calls = seconds, 0

    async def chat(self, messages, tools=None, **kw):
        self.calls += 1
        time.sleep(self.seconds)  # blocks the loop: no coroutine of this process runs meanwhile
        return ChatResult(
            content="finished once",
            tool_calls=[],
            usage=Usage(prompt_tokens=3, completion_tokens=2),
            model="blocking",
            finish_reason="stop",
            cost_usd=0.0,
            duration_ms=self.seconds * 1000,
        )


async def test_an_in_process_run_that_starves_its_event_loop_is_not_taken_over(
    db, db_urls, queued_agent, fake_llm, start_worker
):
    """The CLI/chat case: the loop is blocked for 4× the dead-worker window while a worker's
    maintenance looks for dead runs every second. The claim's heartbeats come from a thread, so the
    run is executed once, by its own process."""
    tenant, agent = queued_agent
    fake_llm.always(Text("a worker ran it a second time"))
    heartbeat = 1.0  # the workers' setting (worker_env), 3 missed beats = dead
    settings = get_settings().model_copy(update={"heartbeat_seconds": heartbeat})
    llm = BlockingLLM(seconds=4 * 3 * heartbeat)
    runtime = Runtime(db, llm=llm, settings=settings)
    ex = await runtime.create(tenant.identity, tenant.team_id, agent, trigger="cli")
    start_worker()
    final = await runtime.run(ex.id)
    assert final.status == "completed" and final.output == {"text": "finished once"}
    assert final.attempts == 1 and llm.calls == 1
    assert fake_llm.chat_requests == []  # no worker ran it
    async with db.session(Identity.system()) as s:
        assert [e.type for e in await s.executions.events(ex.id)] == ["llm_call", "status"]


async def test_a_run_taken_over_by_another_worker_stops_and_writes_no_end(db, queued_agent):
    """If a process was taken for dead anyway (paused for minutes), it finds out within a poll and
    neither finishes the execution nor records a second end."""
    tenant, agent = queued_agent
    settings = get_settings().model_copy(update={"heartbeat_seconds": 0.5})

    class SlowLLM:
        async def chat(self, messages, tools=None, **kw):
            await asyncio.sleep(30)

    runtime = Runtime(db, llm=SlowLLM(), settings=settings, worker="paused-host:1")
    ex = await runtime.create(tenant.identity, tenant.team_id, agent, trigger="cli")
    running = asyncio.create_task(runtime.run(ex.id))
    await _wait_for(db, ex.id, lambda r: r.status == "running", 10)
    async with db.session(Identity.system()) as s:  # what recover_stale + another worker's claim do
        await s.executions.requeue(ex.id)
        taken = await s.executions.start(ex.id, worker_id="other-host:2")
    assert taken is not None and taken.attempts == 2
    result = await asyncio.wait_for(running, 5)
    assert result.status == "running" and result.worker_id == "other-host:2"
    async with db.session(Identity.system()) as s:
        assert not [e for e in await s.executions.events(ex.id) if e.type == "status"]


def test_enqueue_is_a_no_op_for_a_finished_execution(db_urls):
    # guards the SQL function's own check (a job for a finished run would be a wasted claim)
    async def go():
        from coherex.store.db import Database

        async with Database(db_urls.app) as db:
            async with db.session(Identity.system()) as s:
                return await s.executions.queue("00000000-0000-0000-0000-000000000000")

    assert asyncio.run(go()) is False
