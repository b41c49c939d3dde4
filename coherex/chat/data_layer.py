"""Chainlit's data layer over Coherex's own repositories: chat threads live in Postgres next to the
agents (tables `chat_threads`, `chat_steps`, `chat_elements`, `chat_feedback`), under row-level
security, so a person sees only their own conversations.

Who is asking: inside a chat connection, the signed-in person (and the team picked in the chat);
Chainlit's HTTP routes (thread list, open, rename, delete) carry no chat context, so there the
thread's own author is used — Chainlit checks that the caller *is* that author before each of
those calls (`get_thread_author`), and the thread list is asked for by user id.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from chainlit.data.base import BaseDataLayer
from chainlit.data.utils import queue_until_user_message
from chainlit.types import Feedback, PageInfo, PaginatedResponse, Pagination, ThreadDict, ThreadFilter
from chainlit.user import PersistedUser, User

from coherex.store.db import Database, Identity

if TYPE_CHECKING:
    from chainlit.element import Element, ElementDict
    from chainlit.step import StepDict

    from coherex.store.repos.threads import ChatElement, ChatStep, ChatThread

log = logging.getLogger(__name__)

#: elements larger than this keep their name and kind but not their content
MAX_ELEMENT_BYTES = 5 * 1024 * 1024
#: the user-session key the chat keeps the current team under (threads are created in it)
TEAM_KEY = "team_id"
#: metadata keys Chainlit may write that must never be stored (thread sharing is off: threads are private)
_DROPPED_METADATA = ("is_shared", "shared_at", "env")


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z") if value is not None else ""


class CoherexDataLayer(BaseDataLayer):
    def __init__(self, database: Callable[[], Awaitable[Database]]):
        """`database` returns the (opened) database; it is asked lazily, at the first call."""
        self._database = database
        # a thread's name given before the chat knew its team (a first message sent while the chat
        # was still connecting): stored when the thread is created
        self._pending_names: dict[UUID, str] = {}
        # Chainlit writes each step in a background task of its own; one lock per thread makes this
        # process write a thread's rows one transaction at a time, in the order they were issued
        self._locks: weakref.WeakValueDictionary[UUID, asyncio.Lock] = weakref.WeakValueDictionary()

    def _thread_lock(self, thread_id: UUID) -> asyncio.Lock:
        lock = self._locks.get(thread_id)
        if lock is None:
            lock = self._locks[thread_id] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------ who is asking
    @staticmethod
    def _context_user() -> tuple[UUID, UUID | None] | None:
        """(user id, team id) of the chat connection this call runs in, or the signed-in caller of
        an HTTP route of Chainlit's (team unknown), if any."""
        from coherex.chat.session import http_caller

        try:
            from chainlit.context import context

            session = context.session
        except Exception:  # no chat context: an HTTP route of Chainlit's
            session = None
        user = getattr(session, "user", None)
        if user is None:
            caller = http_caller.get()
            return (caller, None) if caller else None
        user_id = _uuid((user.metadata or {}).get("user_id")) or _uuid(getattr(user, "id", None))
        if user_id is None:
            return None
        from chainlit.user_session import user_sessions

        team = _uuid((user_sessions.get(session.id) or {}).get(TEAM_KEY))
        return user_id, team

    async def _identity_for(self, thread_id: UUID) -> Identity | None:
        """The caller in a chat connection; otherwise the thread's author (Chainlit checked it is the
        caller)."""
        who = self._context_user()
        if who is not None:
            return Identity.user(who[0])
        db = await self._database()
        async with db.session(Identity.system()) as s:
            author = await s.threads.author(thread_id)
        return Identity.user(author[0]) if author else None

    # ------------------------------------------------------------------ users (accounts are Coherex's own)
    async def get_user(self, identifier: str) -> PersistedUser | None:
        db = await self._database()
        async with db.session(Identity.system()) as s:
            user = await s.users.get_by_email(identifier)
        if user is None:
            return None
        return PersistedUser(
            id=str(user.id),
            identifier=user.email,
            display_name=user.display_name or user.email,
            createdAt=_iso(user.created_at),
            metadata={"user_id": str(user.id)},
        )

    async def create_user(self, user: User) -> PersistedUser | None:
        # people get accounts from `coherex users add` (or an invitation), never from the chat itself
        return await self.get_user(user.identifier)

    # ------------------------------------------------------------------ threads
    async def get_thread_author(self, thread_id: str) -> str:
        tid = _uuid(thread_id)
        if tid is None:
            return ""
        db = await self._database()
        async with db.session(Identity.system()) as s:
            author = await s.threads.author(tid)
        return author[1] if author else ""

    async def update_thread(
        self,
        thread_id: str,
        name: str | None = None,
        user_id: str | None = None,
        metadata: dict | None = None,
        tags: list[str] | None = None,
    ) -> None:
        tid = _uuid(thread_id)
        if tid is None:
            return
        if metadata is not None:
            metadata = {k: v for k, v in metadata.items() if k not in _DROPPED_METADATA}
        async with self._thread_lock(tid):
            await self._update_thread(tid, name, metadata, tags)

    async def _update_thread(
        self, tid: UUID, name: str | None, metadata: dict | None, tags: list[str] | None
    ) -> None:
        who = self._context_user()
        db = await self._database()
        if who is None:  # rename from the sidebar
            identity = await self._identity_for(tid)
            if identity is None:
                return
            async with db.session(identity) as s:
                await s.threads.upsert(tid, None, name=name, metadata=metadata, tags=tags)
            return
        user, team = who
        name = name or (self._pending_names.pop(tid, None) if team is not None else None)
        async with db.session(Identity.user(user)) as s:
            if (
                not await s.threads.upsert(tid, team, name=name, metadata=metadata, tags=tags)
                and team is None
            ):
                if name:
                    self._pending_names[tid] = name
                log.info("thread %s not stored yet: the chat has no team yet", tid)

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        tid = _uuid(thread_id)
        identity = await self._identity_for(tid) if tid else None
        if identity is None:
            return None
        db = await self._database()
        async with db.session(identity) as s:
            thread = await s.threads.get(tid)
            if thread is None:
                return None
            steps = await s.threads.steps(tid)
            elements = await s.threads.elements(tid)
            feedback = {f.step_id: f for f in await s.threads.feedback(tid)}
        out = _thread_dict(thread)
        out["steps"] = [_step_dict(step, feedback.get(step.id)) for step in steps]
        out["elements"] = [_element_dict(e) for e in elements]
        return out

    async def list_threads(
        self, pagination: Pagination, filters: ThreadFilter
    ) -> PaginatedResponse[ThreadDict]:
        user = _uuid(filters.userId)
        if user is None:
            return PaginatedResponse(
                pageInfo=PageInfo(hasNextPage=False, startCursor=None, endCursor=None), data=[]
            )
        db = await self._database()
        async with db.session(Identity.user(user)) as s:
            rows = await s.threads.list(
                limit=pagination.first + 1, before=_uuid(pagination.cursor), search=filters.search or None
            )
        page = rows[: pagination.first]
        data = [_thread_dict(t) for t in page]
        return PaginatedResponse(
            pageInfo=PageInfo(
                hasNextPage=len(rows) > pagination.first,
                startCursor=data[0]["id"] if data else None,
                endCursor=data[-1]["id"] if data else None,
            ),
            data=data,
        )

    async def delete_thread(self, thread_id: str) -> None:
        tid = _uuid(thread_id)
        identity = await self._identity_for(tid) if tid else None
        if identity is None:
            return
        db = await self._database()
        async with db.session(identity) as s:
            await s.threads.delete(tid)

    # ------------------------------------------------------------------ steps
    async def _write_step(self, step_dict: StepDict, *, replace: bool) -> None:
        tid, sid = _uuid(step_dict.get("threadId")), _uuid(step_dict.get("id"))
        who = self._context_user()
        if tid is None or sid is None or who is None:
            return
        user, team = who
        db = await self._database()
        data = {k: v for k, v in step_dict.items() if k not in ("id", "threadId", "parentId", "feedback")}
        step_type = str(step_dict.get("type") or "undefined")
        name, parent = str(step_dict.get("name") or ""), _uuid(step_dict.get("parentId"))
        async with self._thread_lock(tid), db.session(Identity.user(user)) as s:

            async def write() -> bool:
                return await s.threads.upsert_step(
                    tid, sid, type=step_type, name=name, data=data, parent_id=parent, replace=replace
                )

            if not await write() and team is not None:  # a step before its thread (a resumed session's first)
                await s.threads.upsert(tid, team, name=self._pending_names.pop(tid, None))
                await write()

    @queue_until_user_message()
    async def create_step(self, step_dict: StepDict) -> None:
        await self._write_step(step_dict, replace=False)

    @queue_until_user_message()
    async def update_step(self, step_dict: StepDict) -> None:
        await self._write_step(step_dict, replace=True)

    @queue_until_user_message()
    async def delete_step(self, step_id: str) -> None:
        sid, who = _uuid(step_id), self._context_user()
        if sid is None or who is None:
            return
        db = await self._database()
        async with db.session(Identity.user(who[0])) as s:
            await s.threads.delete_step(sid)

    async def get_favorite_steps(self, user_id: str) -> list[StepDict]:
        return []

    # ------------------------------------------------------------------ elements
    @queue_until_user_message()
    async def create_element(self, element: Element) -> None:
        tid, eid, who = _uuid(element.thread_id), _uuid(element.id), self._context_user()
        if tid is None or eid is None or who is None:
            return
        content = element.content
        if (
            content is None
            and element.path
            and Path(element.path).is_file()
            and Path(element.path).stat().st_size <= MAX_ELEMENT_BYTES
        ):
            content = Path(element.path).read_bytes()
        if isinstance(content, str):
            content = content.encode()
        if content is not None and len(content) > MAX_ELEMENT_BYTES:
            content = None
        data = {
            k: v for k, v in element.to_dict().items() if k not in ("id", "threadId", "forId", "url", "path")
        }
        db = await self._database()
        async with self._thread_lock(tid), db.session(Identity.user(who[0])) as s:
            await s.threads.upsert_element(
                tid,
                eid,
                data=data,
                content=bytes(content) if content else None,
                for_id=_uuid(getattr(element, "for_id", None)),
            )

    async def get_element(self, thread_id: str, element_id: str) -> ElementDict | None:
        tid, eid = _uuid(thread_id), _uuid(element_id)
        identity = await self._identity_for(tid) if tid and eid else None
        if identity is None:
            return None
        db = await self._database()
        async with db.session(identity) as s:
            element = await s.threads.element(tid, eid)
        return _element_dict(element) if element else None

    @queue_until_user_message()
    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        eid, who = _uuid(element_id), self._context_user()
        if eid is None or who is None:
            return
        db = await self._database()
        async with db.session(Identity.user(who[0])) as s:
            await s.threads.delete_element(eid)

    # ------------------------------------------------------------------ feedback
    async def upsert_feedback(self, feedback: Feedback) -> str:
        # Chainlit's feedback route checks no authorship: only the caller's own steps can be rated
        # (row-level security), so the caller must be known — never fall back to the thread's author
        sid, who = _uuid(feedback.forId), self._context_user()
        if sid is None or who is None:
            return ""
        db = await self._database()
        async with db.session(Identity.user(who[0])) as s:
            fid = await s.threads.upsert_feedback(sid, int(feedback.value), feedback.comment)
        return str(fid) if fid else ""

    async def delete_feedback(self, feedback_id: str) -> bool:
        fid, who = _uuid(feedback_id), self._context_user()
        if fid is None or who is None:
            return False
        db = await self._database()
        async with db.session(Identity.user(who[0])) as s:
            return await s.threads.delete_feedback(fid)

    # ------------------------------------------------------------------ the rest of the interface
    async def build_debug_url(self) -> str:
        return ""

    async def close(self) -> None:
        """The database belongs to the chat app, which closes it."""


# ---------------------------------------------------------------------- rows → Chainlit dicts
def _thread_dict(t: ChatThread) -> ThreadDict:
    return ThreadDict(
        id=str(t.id),
        createdAt=_iso(t.updated_at),
        name=t.name,
        userId=str(t.user_id),
        userIdentifier=t.user_email,
        tags=list(t.tags),
        metadata=dict(t.metadata),
        steps=[],
        elements=[],
    )


def _step_dict(step: ChatStep, feedback: Any = None) -> StepDict:
    out: dict[str, Any] = {
        "createdAt": _iso(step.created_at),
        **step.data,
        "id": str(step.id),
        "threadId": str(step.thread_id),
        "parentId": str(step.parent_id) if step.parent_id else None,
        "type": step.type,
        "name": step.name,
    }
    if feedback is not None:
        out["feedback"] = {
            "id": str(feedback.id),
            "forId": str(step.id),
            "threadId": str(step.thread_id),
            "value": feedback.value,
            "comment": feedback.comment,
        }
    return out  # type: ignore[return-value]


def _element_dict(e: ChatElement) -> ElementDict:
    out: dict[str, Any] = {
        **e.data,
        "id": str(e.id),
        "threadId": str(e.thread_id),
        "forId": str(e.for_id) if e.for_id else None,
    }
    if e.content is not None:
        mime = out.get("mime") or "application/octet-stream"
        out["url"] = f"data:{mime};base64,{base64.b64encode(e.content).decode()}"
    return out  # type: ignore[return-value]
