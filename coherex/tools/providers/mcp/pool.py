"""Live MCP sessions kept between the tool calls of one run.

A stdio server keeps state (server-memory's graph, an open file) and takes seconds to start in its
box, so the calls of one run to one source share one session. Each session is owned by a task of
its own (the SDK's transports are anyio context managers: entered and left in one task); calls from
any task go through it. A session is closed when it has been idle for `IDLE_S`, when its server
died (the next call starts a new one), or when `close_all` is called (process shutdown, tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coherex.tools.providers.mcp.client import Session

log = logging.getLogger(__name__)

IDLE_S = 120.0  # a run's session lives this long after its last call
MAX_SESSIONS = 32  # per process: the oldest idle one is closed past this


@dataclass
class _Entry:
    session: Session
    stop: asyncio.Event
    task: asyncio.Task
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0


class SessionPool:
    def __init__(self, idle_s: float = IDLE_S, max_sessions: int = MAX_SESSIONS):
        self.idle_s, self.max_sessions = idle_s, max_sessions
        self._entries: dict[Hashable, _Entry] = {}
        self._opening: dict[Hashable, asyncio.Future] = {}
        self._reaper: asyncio.Task | None = None

    async def session(
        self, key: Hashable, open_: Callable[[], AbstractAsyncContextManager[Session]]
    ) -> Session:
        """The live session for `key`, opened with `open_()` when there is none (or it died)."""
        entry = self._entries.get(key)
        if entry is not None and not entry.session.closed and not entry.task.done():
            entry.last_used = time.monotonic()
            return entry.session
        if entry is not None:
            await self._close(key)
        pending = self._opening.get(key)
        if pending is not None:  # another call of this run is opening it: share that one
            return await asyncio.shield(pending)
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        self._opening[key] = fut
        try:
            session = await self._start(key, open_)
            fut.set_result(session)
            return session
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody else waited
            raise
        finally:
            self._opening.pop(key, None)

    async def _start(
        self, key: Hashable, open_: Callable[[], AbstractAsyncContextManager[Session]]
    ) -> Session:
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        stop = asyncio.Event()

        async def own() -> None:
            try:
                async with open_() as session:
                    ready.set_result(session)
                    await stop.wait()
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller waiting for it
                if not ready.done():
                    ready.set_exception(exc)
                elif not isinstance(exc, asyncio.CancelledError):
                    log.debug("closing an MCP session failed: %s", type(exc).__name__)

        task = asyncio.create_task(own(), name=f"mcp-session-{key}")
        session = await ready
        self._entries[key] = _Entry(session, stop, task)
        await self._trim()
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="mcp-session-reaper")
        return session

    async def forget(self, key: Hashable) -> None:
        """Close the session of `key` (its server died, or the run ended)."""
        await self._close(key)

    async def _close(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        entry.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(entry.task), 10)
        except TimeoutError:
            entry.task.cancel()
        except Exception:  # noqa: BLE001 -- a session that fails to close is gone all the same
            log.debug("an MCP session ended with an error while closing")

    async def _trim(self) -> None:
        while len(self._entries) > self.max_sessions:
            oldest = min(self._entries, key=lambda k: self._entries[k].last_used)
            await self._close(oldest)

    async def _reap(self) -> None:
        while self._entries:
            await asyncio.sleep(min(5.0, self.idle_s / 4))
            now = time.monotonic()
            for key in [k for k, e in self._entries.items() if now - e.last_used > self.idle_s]:
                await self._close(key)

    async def close_all(self) -> None:
        for key in list(self._entries):
            await self._close(key)
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper

    def __len__(self) -> int:
        return len(self._entries)
