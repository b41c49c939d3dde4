"""Executions through the real queue and real worker processes."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from coherex.jobs import enqueue
from coherex.runtime import Runtime
from coherex.store.db import Identity
from coherex.testing.fake_openai import Slow, Text


async def _create(db, tenant, agent, n: int):
    """Queued executions, as the API makes them (row and job in one transaction)."""
    runtime = Runtime(db)
    return [
        await runtime.create(tenant.identity, tenant.team_id, agent, trigger="api", queue=True)
        for _ in range(n)
    ]


async def _wait_for(db, predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.session(Identity.system()) as s:
            rows = await s.executions.list(limit=1000)
        if predicate(rows):
            return rows
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out; statuses: {sorted({r.status for r in rows})}")


async def test_200_executions_across_two_workers_complete_exactly_once(
    db, db_urls, queued_agent, fake_llm, start_worker
):
    tenant, agent = queued_agent
    fake_llm.always(Text("ok"))
    executions = await _create(db, tenant, agent, 200)
    assert not await enqueue(db, executions[0].id)  # it has a job waiting: no second one
    workers = [start_worker("--drain", "--concurrency", "10") for _ in range(2)]
    for w in workers:
        w.wait(120)
    rows = await _wait_for(db, lambda rows: all(r.finished for r in rows), 10)
    assert len(rows) == 200
    assert {r.status for r in rows} == {"completed"}
    assert {r.attempts for r in rows} == {1}
    assert len({r.worker_id for r in rows}) == 2, "both workers should have taken work"
    assert len(fake_llm.chat_requests) == 200
    async with db.session(Identity.system()) as s:
        for ex in executions[:20]:
            assert [e.type for e in await s.executions.events(ex.id)] == ["llm_call", "status"]


async def test_worker_killed_mid_run_leaves_nothing_stuck(db, db_urls, queued_agent, fake_llm, start_worker):
    tenant, agent = queued_agent
    fake_llm.script([Slow(60, Text("never delivered")), Text("recovered")])
    [ex] = await _create(db, tenant, agent, 1)
    first = start_worker()
    try:
        await _wait_for(db, lambda rows: rows[0].status == "running" and fake_llm.chat_requests, 60)
    except AssertionError:
        first.terminate()
        raise AssertionError(first.communicate(timeout=10)[0][-3000:]) from None
    os.kill(first.pid, signal.SIGKILL)
    first.wait(5)
    second = start_worker()
    try:
        rows = await _wait_for(db, lambda rows: rows[0].finished, 60)
    except AssertionError:
        second.terminate()
        raise AssertionError(second.communicate(timeout=10)[0][-3000:]) from None
    assert rows[0].status == "completed" and rows[0].output == {"text": "recovered"}
    assert rows[0].attempts == 2
