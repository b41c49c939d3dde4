"""Scheduled knowledge syncs."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from coherex.store.models import Row
from coherex.store.repos._base import Jsonb, Repo, require

_COLS = (
    "id, team_id, source_name, collection, options, every_minutes, next_at, last_run_at, last_error, "
    "created_by, created_at"
)


class SyncSchedule(Row):
    id: UUID
    team_id: UUID
    source_name: str
    collection: str
    options: dict[str, Any]
    every_minutes: int
    next_at: datetime
    last_run_at: datetime | None
    last_error: str | None
    created_by: UUID | None
    created_at: datetime


class SyncRepo(Repo):
    async def upsert(
        self, team_id: UUID, source_name: str, collection: str, options: dict[str, Any], every_minutes: int
    ) -> SyncSchedule:
        return require(
            await self._one(
                SyncSchedule,
                "insert into public.knowledge_syncs (team_id, source_name, collection, options, "
                "every_minutes, "
                f"next_at, created_by) values (%s, %s, %s, %s, %s, now() + make_interval(mins => %s), %s) "
                f"on conflict (team_id, source_name, collection) do update set options = excluded.options, "
                f"every_minutes = excluded.every_minutes, next_at = excluded.next_at returning {_COLS}",
                (
                    team_id,
                    source_name,
                    collection,
                    Jsonb(options),
                    every_minutes,
                    every_minutes,
                    self.identity.user_id,
                ),
            ),
            "sync schedule",
        )

    async def list(self, team_id: UUID) -> list[SyncSchedule]:
        return await self._all(
            SyncSchedule,
            f"select {_COLS} from public.knowledge_syncs where team_id = %s order by source_name, collection",
            (team_id,),
        )

    async def delete(self, team_id: UUID, source_name: str, collection: str) -> bool:
        return (
            await self._exec(
                "delete from public.knowledge_syncs where team_id = %s and source_name = %s "
                "and collection = %s",
                (team_id, source_name, collection),
            )
            > 0
        )

    async def claim_due(self, now: datetime, limit: int = 20) -> list[SyncSchedule]:
        """Due syncs, moved to their next time at once (so two schedulers never both take one)."""
        return await self._all(
            SyncSchedule,
            f"update public.knowledge_syncs set next_at = %s + make_interval(mins => every_minutes) "
            f"where id in (select id from public.knowledge_syncs where next_at <= %s order by next_at "
            f"limit %s for update skip locked) returning {_COLS}",
            (now, now, limit),
        )

    async def record_run(self, sync_id: UUID, error: str | None) -> None:
        await self._exec(
            "update public.knowledge_syncs set last_run_at = now(), last_error = %s where id = %s",
            (error, sync_id),
        )
