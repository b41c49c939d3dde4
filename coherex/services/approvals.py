"""Approvals as the CLI, the API and the chat read and configure them: what waits, one approval,
the team's default and where waiting calls are announced. (Pausing a run and deciding are the
runtime's: `coherex.runtime.approvals`.)"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from coherex.errors import NotFound, PermissionDenied, UserError
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Execution
from coherex.store.repos.approvals import Approval, PendingApproval


async def pending(
    db: Database, who: Identity, team_id: UUID, *, execution_id: UUID | None = None, limit: int = 200
) -> list[PendingApproval]:
    """Tool calls of the team's runs that wait for a decision, oldest first."""
    async with db.session(who) as s:
        return await s.approvals.pending(team_id, execution_id=execution_id, limit=limit)


async def find(db: Database, who: Identity, team_id: UUID, id_or_prefix: str) -> Approval:
    """By full id or a unique prefix, within the team."""
    async with db.session(who) as s:
        return await s.approvals.find(team_id, id_or_prefix)


async def in_team(db: Database, who: Identity, team_id: UUID, approval_id: UUID) -> Approval:
    async with db.session(who) as s:
        row = await s.approvals.get(approval_id)
    if row is None or row.team_id != team_id:
        raise NotFound(f"Approval {approval_id} was not found.", hint="GET /api/approvals lists what waits.")
    return row


async def set_team_default(db: Database, who: Identity, team_id: UUID, mode: str) -> None:
    """What tools without an approval setting do (`never` or `writes`); admins (audited)."""
    async with db.session(who) as s:
        if not await s.approvals.set_team_default(team_id, mode):
            raise PermissionDenied("Changing the team's approval default needs the admin role.")
        await s.audit.record(
            team_id,
            "team.approval_default",
            target_type="team",
            target_id=str(team_id),
            details={"approval_default": mode},
        )


async def set_team_notify(
    db: Database,
    who: Identity,
    team_id: UUID,
    *,
    source: str | None = None,
    channel: str | None = None,
    email: list[str] | None = None,
    off: bool = False,
) -> dict[str, Any] | None:
    """Announce each waiting call: posted to `channel` through the team's Slack source `source`
    and/or mailed to `email`; setting one keeps the other. `off` stops both. Returns the setting."""
    async with db.session(who) as s:
        if source is not None and not off:
            found = await s.sources.get_by_name(team_id, source)
            if found is None or found.type != "slack":
                raise UserError(
                    f"{source!r} is not a Slack data source of this team.",
                    hint="`coherex sources list` shows them.",
                )
        target = None
        if not off:
            target = dict(await s.approvals.team_notify(team_id) or {})
            if source is not None:
                target.update(source=source, channel=channel)
            if email:
                target["email"] = email
        if not await s.approvals.set_team_notify(team_id, target):
            raise PermissionDenied("Changing where approvals are announced needs the admin role.")
        await s.audit.record(
            team_id,
            "team.approval_notify",
            target_type="team",
            target_id=str(team_id),
            details={"approval_notify": target},
        )
    return target


async def waiting_run(db: Database, execution_id: UUID) -> tuple[Execution, Agent]:
    """The run an approval decided on, and its agent, to resume it (read as the platform: the
    decision was already authorised)."""
    async with db.session(Identity.system()) as s:
        execution = await s.executions.get(execution_id)
        agent = await s.agents.get(execution.agent_id)
    return execution, agent
