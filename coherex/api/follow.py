"""Follow one execution to its end: its stored events in order, then its final row.

Used by the MCP and A2A servers (and fit for any other follower). Woken by the database's NOTIFY
(`coherex_events`, `coherex_executions`), with a poll every few seconds as the safety net, and
reading everything under the caller's identity, so RLS decides what it may see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID

from coherex.errors import NotFound
from coherex.store.db import Database, Identity, Listener
from coherex.store.models import Event, Execution


async def follow(
    db: Database, identity: Identity, execution_id: UUID, *, after_seq: int = 0, poll_seconds: float = 2.0
) -> AsyncIterator[Event | Execution]:
    """Yields each event after `after_seq`, then the execution once it has finished."""
    wanted = str(execution_id)
    wake = asyncio.Event()
    async with Listener(db.url, "coherex_events", "coherex_executions") as listener:

        async def pump() -> None:
            async for _channel, note in listener:
                if str(note.get("execution_id") or note.get("id")) == wanted:
                    wake.set()

        pumping = asyncio.create_task(pump())
        try:
            last = after_seq
            while True:
                wake.clear()  # before reading: a change after this read wakes the wait below
                async with db.session(identity) as s:
                    events = await s.executions.events(execution_id, after_seq=last)
                    current = await s.executions.get(execution_id)
                if current is None:
                    raise NotFound(f"Execution {execution_id} was not found.")
                for event in events:
                    last = event.seq
                    yield event
                if current.finished and not events:
                    yield current
                    return
                if not current.finished:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.wait(), timeout=poll_seconds)
        finally:
            pumping.cancel()
            with contextlib.suppress(BaseException):
                await pumping


def is_sub_agent_link(event: Event) -> bool:
    """The step a run records when a tool call starts a sub-agent (payload: its execution id)."""
    return event.type == "log" and event.name == "sub_agent" and "execution_id" in event.payload


async def sub_agent_events(
    db: Database, identity: Identity, execution_id: UUID, *, live: bool = True
) -> AsyncIterator[Event]:
    """The events of a sub-agent's run and, depth first, of the sub-agents it called in turn: each
    right after the step that started it. `live` follows the run to its end; else what is stored."""
    if live:
        source: AsyncIterator[Event | Execution] = follow(db, identity, execution_id)
    else:
        async with db.session(identity) as s:
            stored = await s.executions.events(execution_id)

        async def _stored() -> AsyncIterator[Event]:
            for e in stored:
                yield e

        source = _stored()
    async for item in source:
        if isinstance(item, Event):
            yield item
            if is_sub_agent_link(item):
                async for deeper in sub_agent_events(
                    db, identity, UUID(item.payload["execution_id"]), live=live
                ):
                    yield deeper
