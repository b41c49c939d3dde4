"""Executions and their events."""

from __future__ import annotations

import builtins
from decimal import Decimal
from typing import Any
from uuid import UUID

from coherex.errors import NotFound, UserError
from coherex.store.models import TERMINAL_STATUSES, Event, Execution, ExecutionStatus
from coherex.store.repos._base import Jsonb, Repo, require

_COLS = (
    "id, team_id, agent_id, agent_version, status, trigger, inputs, output, error, sandbox_id, worker_id, "
    "attempts, heartbeat_at, cancel_requested, tokens_in, tokens_out, cost_usd, started_at, finished_at, "
    "duration_ms, created_by, created_at, updated_at, tool_errors, last_tool_error, outcome, "
    "parent_execution_id, parent_event_seq, depth"
)
_EVENT_COLS = (
    "id, execution_id, team_id, seq, type, name, parent_seq, payload, tokens_in, tokens_out, cost_usd, "
    "duration_ms, created_at"
)


class ExecutionRepo(Repo):
    async def create(
        self,
        team_id: UUID,
        agent_id: UUID,
        agent_version: int,
        *,
        trigger: str = "manual",
        inputs: dict[str, Any] | None = None,
        queue: bool = False,
        api_key_id: UUID | None = None,
        parent: tuple[UUID, int, int] | None = None,
    ) -> Execution:
        """A pending execution; with `queue`, its worker job commits in the same transaction.
        `api_key_id`: the key to count the run against (else the request's `key_id` claim, if any).
        `parent`: (execution id, tool step seq, depth) of the run that calls this one as a sub-agent."""
        parent_id, parent_seq, depth = parent or (None, None, 0)
        execution = require(
            await self._one(
                Execution,
                "insert into public.agent_executions (team_id, agent_id, agent_version, trigger, inputs, "
                f"created_by, api_key_id, parent_execution_id, parent_event_seq, depth) "
                f"values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) returning {_COLS}",
                (
                    team_id,
                    agent_id,
                    agent_version,
                    trigger,
                    Jsonb(inputs or {}),
                    self.identity.user_id,
                    api_key_id,
                    parent_id,
                    parent_seq,
                    depth,
                ),
            ),
            "execution",
        )
        if queue:
            await self.queue(execution.id)
        return execution

    async def queue(self, execution_id: UUID, *, delay_seconds: float = 0) -> bool:
        """Give a pending execution a worker job, in this transaction (False: it has one waiting
        already, or is not pending)."""
        return bool(
            await self._scalar(
                "select coherex_private.queue_execution(%s, %s)", (execution_id, delay_seconds)
            )
        )

    async def queue_orphans(self, grace_seconds: float) -> list[UUID]:
        """Pending executions with no waiting or running job for `grace_seconds`: queued now."""
        async with self.conn.cursor() as cur:
            await self._execute(
                cur, "select * from coherex_private.queue_orphaned_executions(%s)", (grace_seconds,)
            )
            return [r[0] for r in await cur.fetchall()]

    async def get(self, execution_id: UUID) -> Execution | None:
        return await self._one(
            Execution, f"select {_COLS} from public.agent_executions where id = %s", (execution_id,)
        )

    async def find(self, team_id: UUID, id_or_prefix: str) -> Execution:
        """By full id or a unique prefix of it (as `docker` accepts), within the team."""
        prefix = id_or_prefix.strip().lower()
        if not prefix or any(c not in "0123456789abcdef-" for c in prefix):
            raise UserError(f"{id_or_prefix!r} is not an execution id.")
        rows = await self._all(
            Execution,
            f"select {_COLS} from public.agent_executions where team_id = %s and id::text like %s "
            "order by created_at desc limit 2",
            (team_id, prefix + "%"),
        )
        if not rows:
            raise NotFound(f"No execution {id_or_prefix!r} in this team.", hint="`coherex ps -a` lists them.")
        if len(rows) > 1 and str(rows[0].id) != prefix:
            raise UserError(f"{id_or_prefix!r} matches several executions; give more characters.")
        return rows[0]

    async def list(
        self,
        *,
        team_id: UUID | None = None,
        agent_id: UUID | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[Execution]:
        return await self._all(
            Execution,
            f"select {_COLS} from public.agent_executions where (%(t)s::uuid is null or team_id = %(t)s) "
            "and (%(a)s::uuid is null or agent_id = %(a)s) and (%(s)s::text is null or status = %(s)s) "
            "order by created_at desc limit %(n)s",
            {"t": team_id, "a": agent_id, "s": status, "n": limit},
        )

    async def start(
        self, execution_id: UUID, *, worker_id: str, max_concurrent: int | None = None
    ) -> Execution | None:
        """pending → running, once: None when another worker already took it, or when the team
        already has `max_concurrent` runs going (the transaction-scoped team lock makes that count
        exact across workers)."""
        if max_concurrent is not None:
            await self._exec(
                "select pg_advisory_xact_lock(hashtext(team_id::text)) from public.agent_executions where "
                "id = %s",
                (execution_id,),
            )
        return await self._one(
            Execution,
            "update public.agent_executions e set status = 'running', worker_id = %(w)s, started_at = now(), "
            f"heartbeat_at = now(), attempts = attempts + 1 where id = %(id)s and status = 'pending' "
            f"and (%(max)s::int is null or (select count(*) from public.agent_executions r "
            f"where r.team_id = e.team_id and r.status = 'running') < %(max)s) returning {_COLS}",
            {"w": worker_id, "id": execution_id, "max": max_concurrent},
        )

    async def heartbeat(self, execution_id: UUID) -> bool:
        """Refresh liveness; returns whether a stop was asked for."""
        return bool(
            await self._scalar(
                "update public.agent_executions set heartbeat_at = now() where id = %s returning "
                "cancel_requested",
                (execution_id,),
            )
        )

    async def set_sandbox(self, execution_id: UUID, sandbox_id: str) -> None:
        await self._exec(
            "update public.agent_executions set sandbox_id = %s where id = %s", (sandbox_id, execution_id)
        )

    async def finish(
        self,
        execution_id: UUID,
        status: ExecutionStatus,
        *,
        output: Any = None,
        error: str | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: Decimal | float = 0,
        claim: tuple[str, int] | None = None,
    ) -> Execution | None:
        """Move to a final state, once. Returns None if it was already final — or, with `claim`
        (worker id, attempt), if that run no longer owns it (another worker took it over)."""
        assert status in TERMINAL_STATUSES, status
        worker, attempt = claim or (None, None)
        return await self._one(
            Execution,
            f"update public.agent_executions set status = %s, output = %s, error = %s, tokens_in = %s, "
            f"tokens_out = %s, cost_usd = %s, finished_at = now(), "
            f"duration_ms = (extract(epoch from now() - coalesce(started_at, created_at)) * 1000)::int "
            f"where id = %s and status in ('pending', 'running', 'waiting_approval') "
            "and (%s::text is null or (status = 'running' and worker_id = %s and attempts = %s)) returning "
            f"{_COLS}",
            (
                status,
                Jsonb(output) if output is not None else None,
                error,
                tokens_in,
                tokens_out,
                Decimal(str(cost_usd)),
                execution_id,
                worker,
                worker,
                attempt,
            ),
        )

    async def request_cancel(self, execution_id: UUID) -> Execution | None:
        """Ask a run to stop. A pending (or waiting) run is cancelled at once; a running one stops at its
        next step."""
        row = await self._one(
            Execution,
            f"update public.agent_executions set cancel_requested = true where id = %s returning {_COLS}",
            (execution_id,),
        )
        if row is not None and row.status == "pending":
            return await self.finish(execution_id, "cancelled", error="Stopped before it started.") or row
        if row is not None and row.status == "waiting_approval":
            final = await self.finish(
                execution_id,
                "cancelled",
                error="Stopped while waiting for approval.",
                tokens_in=row.tokens_in,
                tokens_out=row.tokens_out,
                cost_usd=row.cost_usd,
            )
            # its calls will never be decided (allowed once the run has ended)
            await self._exec(
                "update public.execution_approvals set status = 'expired' "
                "where execution_id = %s and status = 'pending'",
                (execution_id,),
            )
            # it may wait for a sub-agent that waits for approval: that run stops with it
            for child in await self.children(execution_id):
                if child.status in ("pending", "waiting_approval"):
                    await self.request_cancel(child.id)
            return final or row
        return row

    async def stale(self, older_than_seconds: float) -> builtins.list[Execution]:  # `list`: a method here
        """Running executions whose worker stopped sending heartbeats."""
        return await self._all(
            Execution,
            f"select {_COLS} from public.agent_executions where status = 'running' "
            "and heartbeat_at < now() - make_interval(secs => %s) order by heartbeat_at",
            (older_than_seconds,),
        )

    async def requeue(self, execution_id: UUID, *, delay_seconds: float = 0) -> Execution | None:
        """running → pending with a new worker job (same transaction), for another attempt."""
        row = await self._one(
            Execution,
            f"update public.agent_executions set status = 'pending', worker_id = null, sandbox_id = null "
            f"where id = %s and status = 'running' returning {_COLS}",
            (execution_id,),
        )
        if row is not None:
            await self.queue(execution_id, delay_seconds=delay_seconds)
        return row

    async def children(self, execution_id: UUID) -> builtins.list[Execution]:
        """The sub-agent runs a run started, in order."""
        return await self._all(
            Execution,
            f"select {_COLS} from public.agent_executions where parent_execution_id = %s order by "
            "created_at, id",
            (execution_id,),
        )

    async def running_count(self, team_id: UUID) -> int:
        return await self._scalar(
            "select count(*) from public.agent_executions where team_id = %s and status = 'running'",
            (team_id,),
        )

    # ---------------------------------------------------------------- events
    async def add_event(
        self,
        execution: Execution,
        type: str,
        *,
        name: str = "",
        payload: dict[str, Any] | None = None,
        parent_seq: int | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
        cost_usd: Decimal | float = 0,
        duration_ms: int | None = None,
    ) -> Event:
        # The counter on the execution row hands out gap-free seqs and serialises concurrent writers.
        # A tool result also keeps the run's tool errors (see migration 20261201000400): how many
        # failed, and the error of the last call (cleared when a later call succeeds).
        result = type == "tool_result"
        failed = result and (payload or {}).get("ok") is False
        seq = await self._scalar(
            "update public.agent_executions set event_count = event_count + 1, "
            "tool_errors = tool_errors + %(failed)s::int, "
            "last_tool_error = case when %(result)s then %(error)s else last_tool_error end "
            "where id = %(id)s returning event_count",
            {
                "id": execution.id,
                "result": result,
                "failed": failed,
                "error": str((payload or {}).get("content") or "tool call failed")[:1000] if failed else None,
            },
        )
        return require(
            await self._one(
                Event,
                "insert into public.execution_events (execution_id, team_id, seq, type, name, parent_seq, "
                "payload, "
                "tokens_in, tokens_out, cost_usd, duration_ms) values (%s, %s, %s, %s, %s, %s, %s, %s, %s, "
                f"%s, %s) returning {_EVENT_COLS}",
                (
                    execution.id,
                    execution.team_id,
                    seq,
                    type,
                    name,
                    parent_seq,
                    Jsonb(payload or {}),
                    tokens_in,
                    tokens_out,
                    Decimal(str(cost_usd)),
                    duration_ms,
                ),
            ),
            "event",
        )

    async def events(self, execution_id: UUID, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        return await self._all(
            Event,
            f"select {_EVENT_COLS} from public.execution_events where execution_id = %s and seq > %s "
            "order by seq limit %s",
            (execution_id, after_seq, limit),
        )
