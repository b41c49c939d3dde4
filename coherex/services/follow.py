"""Following runs: `follow` reads one execution's stored events in order, then its row once it has
ended; `follow_tree` does the same for a run and, nested, every sub-agent run it started. What the
CLI's `logs`, the API's SSE logs stream and the MCP and A2A servers show of a run comes from here.

Woken by the database's NOTIFY (`coherex_events`, `coherex_executions`), with a poll every few
seconds as the safety net, and reading everything under the caller's identity, so RLS decides what
it may see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from coherex.errors import NotFound
from coherex.services.runs import steps_since
from coherex.store.db import Database, Identity, Listener
from coherex.store.models import Event, Execution


@contextlib.asynccontextmanager
async def _woken(db: Database, execution_id: UUID) -> AsyncIterator[asyncio.Event]:
    """An event set whenever the database says the execution or its steps changed (LISTEN is in
    place on entry, so nothing after it is missed)."""
    wanted, wake = str(execution_id), asyncio.Event()
    async with Listener(db.url, "coherex_events", "coherex_executions") as listener:

        async def pump() -> None:
            async for _channel, note in listener:
                if str(note.get("execution_id") or note.get("id")) == wanted:
                    wake.set()

        pumping = asyncio.create_task(pump())
        try:
            yield wake
        finally:
            pumping.cancel()
            with contextlib.suppress(BaseException):
                await pumping


async def follow(
    db: Database,
    identity: Identity,
    execution_id: UUID,
    *,
    after_seq: int = 0,
    live: bool = True,
    idle: bool = False,
    poll_seconds: float = 2.0,
) -> AsyncIterator[Event | Execution | None]:
    """Yields each event after `after_seq`, then the execution: with `live` once it has ended,
    else as it is when the stored events are read. With `idle`, a None each time `poll_seconds`
    pass with nothing new (a stream's cue to send a keep-alive and see whether its client left)."""
    async with contextlib.AsyncExitStack() as stack:
        wake = await stack.enter_async_context(_woken(db, execution_id)) if live else None
        last = after_seq
        while True:
            if wake is not None:
                wake.clear()  # before reading: a change after this read wakes the wait below
            events, current = await steps_since(db, identity, execution_id, last)
            if current is None:
                raise NotFound(f"Execution {execution_id} was not found.")
            for event in events:
                last = event.seq
                yield event
            if events:
                continue  # read on: a long run's steps come a page at a time
            if wake is None or current.finished:
                yield current
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=poll_seconds)
            except TimeoutError:
                if idle:
                    yield None


async def follow_tree(
    db: Database,
    identity: Identity,
    execution_id: UUID,
    *,
    live: bool = True,
    idle: bool = False,
    poll_seconds: float = 2.0,
) -> AsyncIterator[Event | Execution | None]:
    """The events of a run and of the sub-agents it called, depth first: each sub-agent's right
    after the step that started it (and before the caller's next one), then the run's own row. What
    is stored comes first; with `live` the tree is followed until the run ends, else it is what is
    stored now and the row as it is. `idle`: as for `follow`."""

    async def walk(ex_id: UUID, root: bool) -> AsyncIterator[Event | Execution | None]:
        async for item in follow(db, identity, ex_id, live=live, idle=idle, poll_seconds=poll_seconds):
            if isinstance(item, Execution):
                if root:
                    yield item
                return
            yield item
            child = item.sub_agent_execution_id if item is not None else None
            if child is not None:
                async with contextlib.aclosing(walk(child, False)) as sub:
                    async for deeper in sub:
                        yield deeper

    async with contextlib.aclosing(walk(execution_id, True)) as tree:
        async for item in tree:
            yield item
