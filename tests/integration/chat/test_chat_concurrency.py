"""The chat's writes as Chainlit issues them — every step creation and update in its own background
task, thread updates in between — on one thread at once: all of them land, none deadlocks, and
the thread ends as the last write left it."""

from __future__ import annotations

import asyncio
import uuid

import chainlit as cl
from chainlit.context import init_http_context

from coherex.chat import CoherexDataLayer
from coherex.chat.data_layer import TEAM_KEY
from coherex.store.db import Database


async def test_concurrent_step_and_thread_writes_all_land(pg_server, db_urls, two_teams):
    alpha, _ = two_teams
    db = Database(db_urls.app, min_size=1, max_size=8)  # as many connections as the chat's pool
    await db.open()
    try:

        async def database() -> Database:
            return db

        layer = CoherexDataLayer(database)
        user = await layer.get_user(alpha.email)
        init_http_context(user=cl.User(identifier=user.identifier, metadata=user.metadata))
        cl.user_session.set(TEAM_KEY, str(alpha.team_id))
        thread_id = str(uuid.uuid4())
        await layer.update_thread(thread_id, name="a busy thread")

        steps = []
        for i in range(40):
            step = cl.Step(name=f"step {i}", type="tool")
            step.thread_id, step.output = thread_id, f"first {i}"
            steps.append(step)
        for step in steps[:20]:  # some are stored already (Chainlit may send a creation again later)
            await layer.create_step(step.to_dict())
        writes = []
        for i, step in enumerate(steps):  # create, update, and the builder state in between, all at once
            writes.append(layer.create_step(step.to_dict()))
            step.output = f"final {i}"
            writes.append(layer.update_step(step.to_dict()))
            writes.append(layer.create_step(step.to_dict()))
            writes.append(layer.update_thread(thread_id, metadata={"builder_state": {"n": i}}))
        results = await asyncio.gather(*(asyncio.create_task(w) for w in writes), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []

        thread = await layer.get_thread(thread_id)
        assert sorted(s["output"] for s in thread["steps"]) == sorted(f"final {i}" for i in range(40))
        assert thread["metadata"]["builder_state"] == {"n": 39}  # written in the order they were issued
    finally:
        await db.close()
