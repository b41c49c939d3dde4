"""Chat threads, their steps, elements and feedback (what the chat's sidebar lists and resumes).

A thread is private to the person who started it (row-level security: `user_id = auth.uid()` in
a team they belong to). Steps and elements take their team and owner from their thread, so a
step can only be attached to a thread the caller can see.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from coherex.store.models import Row
from coherex.store.repos._base import Jsonb, Repo


class ChatThread(Row):
    id: UUID
    team_id: UUID
    user_id: UUID
    name: str | None
    metadata: dict[str, Any]
    tags: list[str]
    created_at: datetime
    updated_at: datetime
    user_email: str | None = None


class ChatStep(Row):
    id: UUID
    thread_id: UUID
    parent_id: UUID | None
    type: str
    name: str
    data: dict[str, Any]
    created_at: datetime


class ChatElement(Row):
    id: UUID
    thread_id: UUID
    for_id: UUID | None
    data: dict[str, Any]
    content: bytes | None


class ChatFeedback(Row):
    id: UUID
    step_id: UUID
    value: int
    comment: str | None


_THREAD = (
    "t.id, t.team_id, t.user_id, t.name, t.metadata, t.tags, t.created_at, t.updated_at, "
    "p.email as user_email"
)
_FROM = "public.chat_threads t left join public.profiles p on p.id = t.user_id"


class ThreadRepo(Repo):
    # ------------------------------------------------------------------ threads
    async def upsert(
        self,
        thread_id: UUID,
        team_id: UUID | None,
        *,
        name: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: list[str] | None = None,
    ) -> bool:
        """Create the caller's thread in `team_id`, or change one they own (metadata is merged).
        Without a team only an existing thread is changed. True when a row was written."""
        sets = ["updated_at = now()"]
        params: list[Any] = []
        if name is not None:
            sets.append("name = %s")
            params.append(name[:255])
        if metadata is not None:
            sets.append("metadata = public.chat_threads.metadata || %s")
            params.append(Jsonb(metadata))
        if tags is not None:
            sets.append("tags = %s")
            params.append(tags)
        if (
            await self._exec(
                f"update public.chat_threads set {', '.join(sets)} where id = %s", (*params, thread_id)
            )
            > 0
        ):
            return True
        if team_id is None:
            return False
        # someone else's thread with this id stays theirs: nothing is written (and nothing is told)
        return (
            await self._exec(
                "insert into public.chat_threads (id, team_id, user_id, name, metadata, tags) "
                "values (%s, %s, auth.uid(), %s, %s, %s) on conflict (id) do nothing",
                (thread_id, team_id, name[:255] if name else None, Jsonb(metadata or {}), tags or []),
            )
            > 0
        )

    async def get(self, thread_id: UUID) -> ChatThread | None:
        return await self._one(ChatThread, f"select {_THREAD} from {_FROM} where t.id = %s", (thread_id,))

    async def author(self, thread_id: UUID) -> tuple[UUID, str] | None:
        """(user id, email) of whoever owns the thread (the system identity uses this to check access)."""
        row = await self._one(ChatThread, f"select {_THREAD} from {_FROM} where t.id = %s", (thread_id,))
        return (row.user_id, row.user_email or "") if row else None

    async def list(
        self,
        *,
        limit: int = 20,
        before: UUID | None = None,
        search: str | None = None,
        team_id: UUID | None = None,
    ) -> list[ChatThread]:
        """The caller's threads, most recently active first; `before` is the last thread of the previous
        page."""
        where, params = ["t.user_id = auth.uid()"], []
        if team_id is not None:
            where.append("t.team_id = %s")
            params.append(team_id)
        if before is not None:
            where.append(
                "(t.updated_at, t.id) < (select updated_at, id from public.chat_threads where id = %s)"
            )
            params.append(before)
        if search:
            where.append(
                "(t.name ilike %s or exists (select 1 from public.chat_steps s where s.thread_id = t.id "
                "and s.data->>'output' ilike %s))"
            )
            pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern, pattern]
        return await self._all(
            ChatThread,
            f"select {_THREAD} from {_FROM} where {' and '.join(where)} order by t.updated_at desc, t.id "
            "desc limit %s",
            (*params, limit),
        )

    async def delete(self, thread_id: UUID) -> bool:
        return await self._exec("delete from public.chat_threads where id = %s", (thread_id,)) > 0

    # ------------------------------------------------------------------ steps
    async def upsert_step(
        self,
        thread_id: UUID,
        step_id: UUID,
        *,
        type: str,
        name: str,
        data: dict[str, Any],
        parent_id: UUID | None = None,
        replace: bool = True,
    ) -> bool:
        """Add or change a step of a thread the caller owns (False when the thread is not theirs or absent).
        `replace=False` (a creation) never overwrites a step already stored: writes may arrive out of
        order, and an update that came first is the newer one.

        The thread row is locked first (its `updated_at`), then the step is written: every write to a
        thread takes its locks in that one order, so concurrent writers queue up instead of
        deadlocking (a step's foreign-key check on the thread after another writer's row lock on the
        step did, issue 17)."""
        if not await self._exec(
            "update public.chat_threads set updated_at = now() where id = %s", (thread_id,)
        ):
            return False
        conflict = (
            "do update set type = excluded.type, name = excluded.name, "
            "data = public.chat_steps.data || excluded.data"
            if replace
            else "do nothing"
        )
        await self._exec(
            "insert into public.chat_steps (id, thread_id, team_id, user_id, parent_id, type, name, data) "
            "select %s, t.id, t.team_id, t.user_id, %s, %s, %s, %s from public.chat_threads t where t.id = "
            f"%s on conflict (id) {conflict}",
            (step_id, parent_id, type, name, Jsonb(data), thread_id),
        )
        return True

    async def steps(self, thread_id: UUID) -> list[ChatStep]:
        return await self._all(
            ChatStep,
            "select id, thread_id, parent_id, type, name, data, created_at from public.chat_steps "
            "where thread_id = %s order by created_at, id",
            (thread_id,),
        )

    async def delete_step(self, step_id: UUID) -> bool:
        return await self._exec("delete from public.chat_steps where id = %s", (step_id,)) > 0

    # ------------------------------------------------------------------ elements
    async def upsert_element(
        self,
        thread_id: UUID,
        element_id: UUID,
        *,
        data: dict[str, Any],
        content: bytes | None = None,
        for_id: UUID | None = None,
    ) -> bool:
        return (
            await self._exec(
                "insert into public.chat_elements (id, thread_id, team_id, user_id, for_id, data, content) "
                "select %s, t.id, t.team_id, t.user_id, %s, %s, %s from public.chat_threads t where t.id = "
                "%s "
                "on conflict (id) do update set data = excluded.data, content = coalesce(excluded.content, "
                "public.chat_elements.content), for_id = excluded.for_id",
                (element_id, for_id, Jsonb(data), content, thread_id),
            )
            > 0
        )

    async def elements(self, thread_id: UUID) -> list[ChatElement]:
        return await self._all(
            ChatElement,
            "select id, thread_id, for_id, data, content from public.chat_elements "
            "where thread_id = %s order by created_at, id",
            (thread_id,),
        )

    async def element(self, thread_id: UUID, element_id: UUID) -> ChatElement | None:
        return await self._one(
            ChatElement,
            "select id, thread_id, for_id, data, content from public.chat_elements "
            "where thread_id = %s and id = %s",
            (thread_id, element_id),
        )

    async def delete_element(self, element_id: UUID) -> bool:
        return await self._exec("delete from public.chat_elements where id = %s", (element_id,)) > 0

    # ------------------------------------------------------------------ feedback
    async def upsert_feedback(self, step_id: UUID, value: int, comment: str | None = None) -> UUID | None:
        """Thumbs up (1) or down (0) on a step of the caller's thread; one per step."""
        return await self._scalar(
            "insert into public.chat_feedback (step_id, thread_id, team_id, user_id, value, comment) "
            "select s.id, s.thread_id, s.team_id, s.user_id, %s, %s from public.chat_steps s where s.id = %s "
            "on conflict (step_id) do update set value = excluded.value, comment = excluded.comment "
            "returning id",
            (value, comment, step_id),
        )

    async def feedback(self, thread_id: UUID) -> list[ChatFeedback]:
        return await self._all(
            ChatFeedback,
            "select id, step_id, value, comment from public.chat_feedback where thread_id = %s",
            (thread_id,),
        )

    async def delete_feedback(self, feedback_id: UUID) -> bool:
        return await self._exec("delete from public.chat_feedback where id = %s", (feedback_id,)) > 0
