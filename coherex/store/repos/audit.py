"""The append-only audit log (and monthly usage, kept by a database trigger)."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from coherex.store.models import AuditEntry, Usage
from coherex.store.repos._base import Jsonb, Repo

_COLS = "id, team_id, actor_id, actor_kind, action, target_type, target_id, details, created_at"


class AuditRepo(Repo):
    async def record(
        self,
        team_id: UUID | None,
        action: str,
        *,
        target_type: str = "",
        target_id: str = "",
        details: dict[str, Any] | None = None,
        actor_kind: str | None = None,
    ) -> None:
        kind = actor_kind or ("user" if self.identity.user_id else "system")
        await self._exec(
            "insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, "
            "details) values (%s, %s, %s, %s, %s, %s, %s)",
            (team_id, self.identity.user_id, kind, action, target_type, str(target_id), Jsonb(details or {})),
        )

    async def list(self, team_id: UUID, *, limit: int = 100, action: str | None = None) -> list[AuditEntry]:
        return await self._all(
            AuditEntry,
            f"select {_COLS} from public.audit_log where team_id = %s and (%s::text is null or action = %s) "
            "order by id desc limit %s",
            (team_id, action, action, limit),
        )

    async def usage(self, team_id: UUID, period: date | None = None) -> Usage:
        month = (period or date.today()).replace(day=1)
        row = await self._one(
            Usage,
            "select team_id, period, executions, tokens, cost_usd from public.usage "
            "where team_id = %s and period = %s",
            (team_id, month),
        )
        return row or Usage(team_id=team_id, period=month, executions=0, tokens=0, cost_usd=0)
