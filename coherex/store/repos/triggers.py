"""Schedules, webhook secrets and deliveries."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from coherex.store.models import Row
from coherex.store.repos._base import Repo

_SCHED = "agent_id, team_id, trigger_index, cron, timezone, next_fire_at, last_fired_at"


class Schedule(Row):
    agent_id: UUID
    team_id: UUID
    trigger_index: int
    cron: str
    timezone: str
    next_fire_at: datetime
    last_fired_at: datetime | None


class TriggerRepo(Repo):
    async def replace_schedules(
        self, agent_id: UUID, team_id: UUID, schedules: list[tuple[int, str, str, datetime]]
    ) -> None:
        """The agent's schedules become exactly `schedules` = [(trigger_index, cron, timezone,
        next_fire_at)]."""
        await self._exec("delete from public.agent_schedules where agent_id = %s", (agent_id,))
        for index, cron, tz, next_at in schedules:
            await self._exec(
                "insert into public.agent_schedules (agent_id, team_id, trigger_index, cron, timezone, "
                "next_fire_at) values (%s, %s, %s, %s, %s, %s)",
                (agent_id, team_id, index, cron, tz, next_at),
            )

    async def schedules(self, agent_id: UUID) -> list[Schedule]:
        return await self._all(
            Schedule,
            f"select {_SCHED} from public.agent_schedules where agent_id = %s order by trigger_index",
            (agent_id,),
        )

    async def claim_due(self, now: datetime, limit: int = 100) -> list[Schedule]:
        """Due schedules of active agents, locked for this transaction (other schedulers skip them)."""
        return await self._all(
            Schedule,
            f"select {', '.join('s.' + c for c in _SCHED.split(', '))} from public.agent_schedules s "
            "join public.agents a on a.id = s.agent_id where a.status = 'active' and s.next_fire_at <= %s "
            "order by s.next_fire_at limit %s for update of s skip locked",
            (now, limit),
        )

    async def mark_fired(self, schedule: Schedule, fired_at: datetime, next_fire_at: datetime) -> None:
        await self._exec(
            "update public.agent_schedules set last_fired_at = %s, next_fire_at = %s "
            "where agent_id = %s and trigger_index = %s",
            (fired_at, next_fire_at, schedule.agent_id, schedule.trigger_index),
        )

    # ------------------------------------------------------------ webhooks
    async def set_webhook_secret(
        self, agent_id: UUID, ciphertext: str, key_id: str, api_key_id: UUID | None = None
    ) -> None:
        """Store a new secret; `api_key_id` is the API key that asked for it (the webhook's runs
        count against that key's quotas), None for a chat session or the CLI."""
        await self._exec(
            "update public.agents set webhook_secret_encrypted = %s, webhook_secret_key_id = %s, "
            "webhook_api_key_id = %s where id = %s",
            (ciphertext, key_id, api_key_id, agent_id),
        )

    async def webhook_api_key(self, agent_id: UUID) -> UUID | None:
        async with self.conn.cursor() as cur:
            await cur.execute("select webhook_api_key_id from public.agents where id = %s", (agent_id,))
            row = await cur.fetchone()
        return row[0] if row else None

    async def webhook_secret(self, agent_id: UUID) -> tuple[str | None, str | None]:
        async with self.conn.cursor() as cur:
            await cur.execute(
                "select webhook_secret_encrypted, webhook_secret_key_id from public.agents where id = %s",
                (agent_id,),
            )
            row = await cur.fetchone()
        return (row[0], row[1]) if row else (None, None)

    async def record_delivery(self, agent_id: UUID, team_id: UUID, delivery_id: str) -> bool:
        """False when this delivery was seen before (a replay)."""
        return (
            await self._exec(
                "insert into public.webhook_deliveries (agent_id, team_id, delivery_id) values (%s, %s, %s) "
                "on conflict do nothing",
                (agent_id, team_id, delivery_id),
            )
            == 1
        )
