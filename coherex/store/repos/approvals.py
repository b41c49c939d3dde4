"""Tool calls waiting for a person's approval, and the state their run resumes from."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from coherex.errors import NotFound, UserError
from coherex.store.models import Execution, Row
from coherex.store.repos._base import Jsonb, Repo
from coherex.store.repos.executions import _COLS as _EXECUTION_COLS

_COLS = (
    "id, team_id, execution_id, agent_id, step, tool_call_id, tool_name, tool_use, arguments, reason, "
    "status, "
    "decided_by, decided_at, edited_arguments, message, expires_at, on_timeout, call_started_at, result, "
    "created_at"
)


# a run and the sub-agent runs below it, at any depth (the query's parameter: the run's id)
_TREE = (
    "with recursive tree(id) as (select %s::uuid union all select c.id from public.agent_executions c "
    "join tree on c.parent_execution_id = tree.id) select id from tree"
)


class Approval(Row):
    id: UUID
    team_id: UUID
    execution_id: UUID
    agent_id: UUID
    step: int
    tool_call_id: str
    tool_name: str
    tool_use: str
    arguments: dict[str, Any]
    reason: str
    status: str
    decided_by: UUID | None
    decided_at: datetime | None
    edited_arguments: dict[str, Any] | None
    message: str | None
    expires_at: datetime
    on_timeout: str
    call_started_at: datetime | None
    result: dict[str, Any] | None
    created_at: datetime


class PendingApproval(Approval):
    """A waiting call with what a person needs to decide: the agent, and who started the run."""

    agent_name: str
    trigger: str
    requested_by: str | None = None


class ApprovalRepo(Repo):
    async def pause(
        self,
        execution_id: UUID,
        claim: tuple[str, int],
        state: dict[str, Any],
        *,
        tokens_in: int,
        tokens_out: int,
        cost_usd: Decimal,
    ) -> Execution | None:
        """running → waiting_approval for the claim's owner only: no worker, no sandbox, the resume
        state stored. The attempt count starts again (a pause is not a failed attempt)."""
        worker, attempt = claim
        return await self._one(
            Execution,
            "update public.agent_executions set status = 'waiting_approval', worker_id = null, sandbox_id "
            f"= null, attempts = 0, resume_state = %s, tokens_in = %s, tokens_out = %s, cost_usd = %s "
            "where id = %s and status = 'running' and worker_id = %s and attempts = %s returning "
            f"{_EXECUTION_COLS}",
            (Jsonb(state), tokens_in, tokens_out, cost_usd, execution_id, worker, attempt),
        )

    async def add(
        self,
        execution: Execution,
        *,
        step: int,
        tool_call_id: str,
        tool_name: str,
        tool_use: str,
        arguments: dict[str, Any],
        reason: str,
        timeout_seconds: int,
        on_timeout: str,
    ) -> Approval:
        return await self._one(
            Approval,
            "insert into public.execution_approvals (team_id, execution_id, agent_id, step, tool_call_id, "
            "tool_name, "
            "tool_use, arguments, reason, expires_at, on_timeout) values (%s, %s, %s, %s, %s, %s, %s, %s, "
            f"%s, now() + make_interval(secs => %s), %s) returning {_COLS}",
            (
                execution.team_id,
                execution.id,
                execution.agent_id,
                step,
                tool_call_id,
                tool_name,
                tool_use,
                Jsonb(arguments),
                reason,
                timeout_seconds,
                on_timeout,
            ),
        )

    async def resume_state(self, execution_id: UUID) -> dict[str, Any] | None:
        return await self._scalar(
            "select resume_state from public.agent_executions where id = %s", (execution_id,)
        )

    async def get(self, approval_id: UUID) -> Approval | None:
        return await self._one(
            Approval, f"select {_COLS} from public.execution_approvals where id = %s", (approval_id,)
        )

    async def find(self, team_id: UUID, id_or_prefix: str) -> Approval:
        """By full id or a unique prefix of it, within the team."""
        prefix = id_or_prefix.strip().lower()
        if not prefix or any(c not in "0123456789abcdef-" for c in prefix):
            raise UserError(f"{id_or_prefix!r} is not an approval id.")
        rows = await self._all(
            Approval,
            f"select {_COLS} from public.execution_approvals where team_id = %s and id::text like %s "
            "order by created_at desc limit 2",
            (team_id, prefix + "%"),
        )
        if not rows:
            raise NotFound(
                f"No approval {id_or_prefix!r} in this team.", hint="`coherex approvals list` shows them."
            )
        if len(rows) > 1 and str(rows[0].id) != prefix:
            raise UserError(f"{id_or_prefix!r} matches several approvals; give more characters.")
        return rows[0]

    async def of_step(self, execution_id: UUID, step: int) -> list[Approval]:
        return await self._all(
            Approval,
            f"select {_COLS} from public.execution_approvals where execution_id = %s and step = %s "
            "order by created_at, tool_call_id",
            (execution_id, step),
        )

    async def of_execution(self, execution_id: UUID) -> list[Approval]:
        return await self._all(
            Approval,
            f"select {_COLS} from public.execution_approvals where execution_id = %s "
            "order by created_at, tool_call_id",
            (execution_id,),
        )

    async def pending(
        self, team_id: UUID, *, execution_id: UUID | None = None, limit: int = 200
    ) -> list[PendingApproval]:
        """What waits in the team; with `execution_id`, in that run and the sub-agent runs below it."""
        cols = ", ".join(f"a.{c.strip()}" for c in _COLS.split(","))
        return await self._all(
            PendingApproval,
            f"select {cols}, g.name as agent_name, e.trigger, u.email as requested_by "
            "from public.execution_approvals a join public.agents g on g.id = a.agent_id "
            "join public.agent_executions e on e.id = a.execution_id "
            "left join public.profiles u on u.id = e.created_by "
            "where a.team_id = %s and a.status = 'pending' and (%s::uuid is null or a.execution_id in "
            f"({_TREE})) order by a.created_at limit %s",
            (team_id, execution_id, execution_id, limit),
        )

    async def lock_execution(self, execution_id: UUID) -> Execution | None:
        """The execution, locked until this transaction ends: decisions of one run are serialised, so
        exactly one of them sees the step fully decided and re-queues it."""
        return await self._one(
            Execution,
            f"select {_EXECUTION_COLS} from public.agent_executions where id = %s for update",
            (execution_id,),
        )

    async def decide(
        self,
        approval_id: UUID,
        status: str,
        *,
        edited_arguments: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> Approval | None:
        """pending → status, once (None when it was decided already or is not the caller's to decide)."""
        return await self._one(
            Approval,
            f"update public.execution_approvals set status = %s, edited_arguments = %s, message = %s, "
            f"decided_by = %s, decided_at = now() where id = %s and status = 'pending' returning {_COLS}",
            (
                status,
                Jsonb(edited_arguments) if edited_arguments is not None else None,
                message,
                self.identity.user_id,
                approval_id,
            ),
        )

    async def resume(self, execution_id: UUID) -> Execution | None:
        """waiting_approval → pending once every call is decided; returns the run that was queued
        with its job (same transaction). A sub-agent's run has no job of its own: its caller, which
        waits for it, is resumed instead (up to the root), and runs it again inside its tool step."""
        row = await self._one(
            Execution,
            "update public.agent_executions e set status = 'pending' where id = %s and status = "
            "'waiting_approval' "
            f"and not exists (select 1 from public.execution_approvals a where a.execution_id = e.id "
            f"and a.status = 'pending') returning {_EXECUTION_COLS}",
            (execution_id,),
        )
        return await self.wake_caller(row) if row is not None else None

    async def wake_caller(self, row: Execution) -> Execution | None:
        """A sub-agent run that its caller waited for can go on (or has ended): resume the caller.
        A root run is queued. None when the caller no longer waits (it was stopped meanwhile)."""
        if row.parent_execution_id is None:
            await self._scalar("select coherex_private.queue_execution(%s, 0)", (row.id,))
            return row
        return await self.resume(row.parent_execution_id)

    async def expire_pending(self, execution_id: UUID) -> int:
        return await self._exec(
            "update public.execution_approvals set status = 'expired', decided_at = now() "
            "where execution_id = %s and status = 'pending'",
            (execution_id,),
        )

    async def expire(self, approval_ids: list[UUID]) -> int:
        return await self._exec(
            "update public.execution_approvals set status = 'expired', decided_at = now() "
            "where id = any(%s) and status = 'pending'",
            (approval_ids,),
        )

    async def overdue(self, limit: int = 200) -> list[Approval]:
        return await self._all(
            Approval,
            f"select {_COLS} from public.execution_approvals where status = 'pending' "
            "and expires_at <= now() order by expires_at limit %s",
            (limit,),
        )

    async def start_call(self, approval_id: UUID) -> bool:
        """Mark the approved call as started, once: False when an earlier attempt started it."""
        return bool(
            await self._exec(
                "update public.execution_approvals set call_started_at = now() where id = %s and "
                "call_started_at is null",
                (approval_id,),
            )
        )

    async def unstart_call(self, approval_id: UUID) -> None:
        """The approved call is a sub-agent that now waits for approval itself: nothing of it is
        lost, the resumed run calls it again (it goes on in the same child run)."""
        await self._exec(
            "update public.execution_approvals set call_started_at = null where id = %s", (approval_id,)
        )

    async def save_result(self, approval_id: UUID, text: str, ok: bool) -> None:
        await self._exec(
            "update public.execution_approvals set result = %s where id = %s",
            (Jsonb({"text": text, "ok": ok}), approval_id),
        )

    async def team_default(self, team_id: UUID) -> str:
        return (
            await self._scalar("select approval_default from public.teams where id = %s", (team_id,))
            or "never"
        )

    async def set_team_default(self, team_id: UUID, mode: str) -> bool:
        return bool(
            await self._exec("update public.teams set approval_default = %s where id = %s", (mode, team_id))
        )

    async def team_notify(self, team_id: UUID) -> dict[str, Any] | None:
        return await self._scalar("select approval_notify from public.teams where id = %s", (team_id,))

    async def set_team_notify(self, team_id: UUID, notify: dict[str, Any] | None) -> bool:
        return bool(
            await self._exec(
                "update public.teams set approval_notify = %s where id = %s",
                (Jsonb(notify) if notify else None, team_id),
            )
        )
