"""Run one execution: the agent loop with its limits, cancellation and bookkeeping.

    runtime = Runtime(db)
    execution = await runtime.create(identity, team_id, agent, inputs={...})
    final = await runtime.run(execution.id, listeners=[print_step])

A run ends `completed`, `failed` (with the reason), `cancelled` or `timed_out`; its duration,
tokens, cost and output are written, and its sandbox is killed, in every case.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from coherex import resources
from coherex.errors import BackendError, CoherexError, DatabaseUnavailable, NotFound, QuotaExceeded, UserError
from coherex.runtime import approvals, subagents
from coherex.runtime.citations import RULE as CITATION_RULE
from coherex.runtime.claims import POLL_SECONDS as CLAIM_POLL_SECONDS
from coherex.runtime.claims import Claim, ClaimKeeper
from coherex.runtime.events import EventListener, EventRecorder
from coherex.runtime.tools import RunContext, ToolBox, ToolFailed
from coherex.settings import Settings, get_settings
from coherex.spec import AgentSpec, load_spec, render_instructions
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Event, Execution, ExecutionStatus

if TYPE_CHECKING:
    from coherex.store.repos import Session

log = logging.getLogger(__name__)
T = TypeVar("T")

PROMPTS = resources.path("prompts")


class ConcurrencyLimited(QuotaExceeded):
    """The team is at its concurrent-run limit; the execution stays pending (a worker retries later)."""

    code = "concurrency_limited"


class RetryLater(BackendError):
    """A backend failed before the run could start (the database went away): retry the job later."""


class _ClaimLost(Exception):
    """Another worker took this execution over (this process was taken for dead): stop, write nothing."""


class _Stop(Exception):
    """The run must end now with `status` and `reason` (a limit was reached)."""

    def __init__(self, status: ExecutionStatus, reason: str):
        super().__init__(reason)
        self.status: ExecutionStatus = status
        self.reason = reason


@dataclass
class _Totals:
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)


def usd(value: float | Decimal) -> Decimal:
    """Money as stored (6 decimals), so a run's total is exactly the sum of its steps."""
    return Decimal(str(value)).quantize(Decimal("0.000001"), ROUND_HALF_UP)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Runtime:
    def __init__(
        self,
        db: Database,
        *,
        llm: Any = None,
        sandbox_opener: Any = None,
        settings: Settings | None = None,
        worker: str | None = None,
    ):
        self.db = db
        self.settings = settings or get_settings()
        self._llm = llm
        self._llm_given = llm is not None  # a given client (tests, the eval) is used for every team
        self._sandbox_opener = sandbox_opener
        self.worker = worker or worker_id()

    @property
    def llm(self) -> Any:
        if self._llm is None:
            from coherex.llm import get_llm_client

            self._llm = get_llm_client(self.settings)
        return self._llm

    async def llm_for(self, team_id: UUID) -> tuple[Any, str]:
        """The client a team's runs use and the model name they ask for when a spec names none:
        the team's connected model, else the install's default."""
        if not self._llm_given:
            from coherex.llm.team import team_model

            team = await team_model(self.db, team_id, self.settings)
            if team is not None:
                return team.client, team.model
        return self.llm, self.settings.default_model

    # ------------------------------------------------------------------ creating
    async def create(
        self,
        identity: Identity,
        team_id: UUID,
        agent: Agent,
        *,
        version: int | None = None,
        trigger: str = "manual",
        inputs: dict[str, Any] | None = None,
        queue: bool = False,
    ) -> Execution:
        """A pending execution of the agent's current (or given) version, after checking inputs and
        quotas. With `queue` a worker runs it: its job commits with the row (never one without the other)."""
        async with self.db.session(identity) as s:
            pinned = await s.agents.require_version(agent, version)
            spec = load_spec(pinned.spec)
            clean = check_inputs(spec, inputs or {})
            await check_quota(s, team_id)
            execution = await s.executions.create(
                team_id, agent.id, pinned.version, trigger=trigger, inputs=clean, queue=queue
            )
            await s.audit.record(
                team_id,
                "execution.create",
                target_type="execution",
                target_id=str(execution.id),
                details={"agent": agent.name, "version": pinned.version, "trigger": trigger},
            )
        return execution

    # ------------------------------------------------------------------ running
    async def run(
        self,
        execution_id: UUID,
        *,
        listeners: list[EventListener] | None = None,
        retry_backend_errors: bool = False,
        files: dict[str, bytes] | None = None,
        budget: subagents.Budget | None = None,
    ) -> Execution:
        """Run a pending execution to its end. Returns the final row (or the current one if it was
        not pending: another worker has it, or it was cancelled before it started).

        `files` (name → bytes; uploads of a chat or `coherex run --file`) are written into the
        sandbox's working directory when it opens. Raises ConcurrencyLimited when the team is at
        its limit. With `retry_backend_errors` (workers), a backend failure at any point is retried:
        before the start, by raising RetryLater (nothing changed); later, by putting the execution
        back to pending with a new job (bounded by COHEREX_MAX_ATTEMPTS). `budget`: the cost and time
        pot of the run that called this one as a sub-agent."""
        files = _safe_names(files or {})  # refused before anything starts
        try:
            claimed = await self._claim(execution_id)
        except BackendError as exc:
            if retry_backend_errors:  # nothing changed: its transaction rolled back; the job is retried
                raise RetryLater(f"could not start: {exc}") from exc
            raise
        if isinstance(claimed, Execution):
            return claimed
        execution, agent, version = claimed
        claim = Claim(execution.id, self.worker, execution.attempts)
        keeper = ClaimKeeper.for_database(self.db.url, self.settings.heartbeat_seconds)
        keeper.hold(claim)
        try:
            return await self._run_claimed(
                claim, execution, agent, version, listeners, files, retry_backend_errors, budget
            )
        finally:
            keeper.release(claim)

    async def _claim(self, execution_id: UUID) -> Execution | tuple[Execution, Agent | None, Any]:
        """pending → running for this process; the current row when it cannot be taken."""
        async with self.db.session(Identity.system()) as s:
            current = await s.executions.get(execution_id)
            if current is None:
                raise NotFound(f"Execution {execution_id} was not found.")
            team = await s.teams.get(current.team_id)
            # a sub-agent runs inside its parent's run: it does not wait for a slot its parent holds
            limit = team.max_concurrent_runs if team and current.parent_execution_id is None else None
            execution = await s.executions.start(execution_id, worker_id=self.worker, max_concurrent=limit)
            if execution is None:
                current = await s.executions.get(execution_id)
                if current is None:
                    raise NotFound(f"Execution {execution_id} was not found.")
                if current.status == "pending" and team is not None and limit is not None:
                    raise ConcurrencyLimited(f"Team {team.slug} already has {limit} runs going.")
                return current
            agent = await s.agents.get(execution.agent_id)
            version = await s.agents.get_version(execution.agent_id, execution.agent_version)
        return execution, agent, version

    async def _run_claimed(
        self,
        claim: Claim,
        execution: Execution,
        agent: Agent | None,
        version: Any,
        listeners: list[EventListener] | None,
        files: dict[str, bytes],
        retry_backend_errors: bool,
        budget: subagents.Budget | None = None,
    ) -> Execution:
        recorder = EventRecorder(self.db, execution, secrets=self._secrets(), listeners=list(listeners or []))
        owner = (agent.created_by if agent else None) or execution.created_by
        identity = Identity.user(owner, team_id=execution.team_id) if owner else Identity.system()
        retry_left = retry_backend_errors and execution.attempts < self.settings.max_attempts
        totals = _Totals()
        ctx: RunContext | None = None
        status: ExecutionStatus = "failed"
        output: Any = None
        error: str | None = None
        try:
            spec = load_spec(version.spec)
            ctx = RunContext(
                self.db,
                execution,
                identity,
                recorder,
                spec,
                files=files,
                final_attempt=not retry_left,
                sandbox_opener=lambda: self._open_sandbox(spec, execution),
                runtime=self,
                budget=budget,
            )
            ctx.sub_agents = await subagents.load(ctx, version.sub_agents)
            ctx.approvals = await approvals.Gate.load(self.db, execution)
            if ctx.approvals.resume is not None:  # it waited for approval: its totals so far
                r = ctx.approvals.resume
                totals.tokens_in, totals.tokens_out, totals.cost_usd = r.tokens_in, r.tokens_out, r.cost_usd
            status, output, error = await self._supervise(ctx, claim, totals)
        except _ClaimLost:
            log.warning(
                "execution %s: this run lost its claim (another worker has it); stopping", execution.id
            )
            return await self._current(execution.id)
        except BackendError as exc:
            if retry_left:
                await _record_quietly(
                    recorder, "log", {"message": f"attempt {execution.attempts} failed: {exc}; retrying"}
                )
                # pending again with a new job (one transaction): that job retries it, not this one
                requeued = await self._while_database_returns(lambda s: s.executions.requeue(execution.id))
                return requeued or await self._current(execution.id)  # None: the claim went elsewhere
            error = str(exc)
        except CoherexError as exc:
            error = str(exc)
        except Exception as exc:  # the run fails with a reason; the platform goes on
            log.exception("execution %s crashed", execution.id)
            error = f"internal error: {type(exc).__name__}: {exc}"
        finally:
            if ctx is not None and ctx.sandbox is not None:
                await _kill_quietly(ctx.sandbox)
        # The final state and its closing events commit together, by the claim's owner only. The
        # claim is held (heart-beating) while the database is away, so the end is written once.
        if status == "waiting_approval":  # paused durably: no worker, no sandbox until a decision
            assert ctx is not None and isinstance(output, approvals.Paused)  # what _supervise returns then
            paused, run = output, ctx
            final, events = await self._while_database_returns(
                lambda s: approvals.pause(
                    s, recorder, execution, claim, paused, totals, run.citations.passages, run.spec.limits
                )
            )
            for event in events:
                await recorder.announce(event)
            await approvals.notify_quietly(self.db, final, events)  # the team's approval channel, if set
            return final
        output, error = recorder.redact(output), recorder.redact(error)  # shown like events are

        async def finish(s: Session) -> tuple[Execution | None, list[Event]]:
            final = await s.executions.finish(
                execution.id,
                status,
                output=output,
                error=error,
                tokens_in=totals.tokens_in,
                tokens_out=totals.tokens_out,
                cost_usd=totals.cost_usd,
                claim=(claim.worker_id, claim.attempt),
            )
            closing = []
            if final is not None:
                if error:
                    closing.append(await recorder.add(s, "error", payload={"message": error}))
                closing.append(
                    await recorder.add(s, "status", name=status, payload={"status": status, "reason": error})
                )
            else:
                final = await s.executions.get(execution.id)
            return final, closing

        ended, closing = await self._while_database_returns(finish)
        for event in closing:
            await recorder.announce(event)
        return ended if ended is not None else await self._current(execution.id)

    async def _while_database_returns(
        self, work: Callable[[Session], Awaitable[T]], *, patience_seconds: float = 60.0
    ) -> T:
        """Run `work(session)` in a system session, again while the database is away (a restart
        takes seconds); gives up with the last DatabaseUnavailable after `patience_seconds`."""
        deadline = time.monotonic() + patience_seconds
        delay = 0.2
        while True:
            try:
                async with self.db.session(Identity.system()) as s:
                    return await work(s)
            except DatabaseUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _current(self, execution_id: UUID) -> Execution:
        async with self.db.session(Identity.system()) as s:
            row = await s.executions.get(execution_id)
        if row is None:
            raise NotFound(f"Execution {execution_id} was not found.")
        return row

    async def _supervise(
        self, ctx: RunContext, claim: Claim, totals: _Totals
    ) -> tuple[ExecutionStatus, Any, str | None]:
        """Race the agent loop against the wall clock, a stop request and the loss of the claim."""
        limits = ctx.spec.limits
        # time spent waiting for approval does not count: only the time this run was active before
        waited = ctx.approvals.resume if ctx.approvals else None
        used = waited.active_seconds if waited else 0.0
        began = time.monotonic()
        own_seconds = max(limits.timeoutSeconds - used, 0.001)
        if ctx.budget is None:  # a root run: its limits are the pot its sub-agents share
            spent = waited.pot_spent_usd if waited and waited.pot_spent_usd is not None else totals.cost_usd
            ctx.budget = subagents.Budget(usd(limits.maxCostUsd), began + own_seconds, spent)
        # a sub-agent's time is also bounded by what is left of its caller's
        pot_binds = ctx.execution.parent_execution_id is not None and ctx.budget.seconds_left() < own_seconds
        seconds = max(ctx.budget.seconds_left(), 0.001) if pot_binds else own_seconds
        loop = asyncio.create_task(self._agent_loop(ctx, totals))
        watch = asyncio.create_task(_watch_claim(claim))
        try:
            done, _ = await asyncio.wait(
                {loop, watch},
                timeout=seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if loop in done:
                try:
                    answer = loop.result()
                    sources = ctx.citations.sources(answer)
                    return "completed", {"text": answer, **({"sources": sources} if sources else {})}, None
                except _Stop as stop:
                    return stop.status, None, stop.reason
                except approvals.Paused as paused:
                    paused.active_seconds = used + time.monotonic() - began
                    if ctx.execution.parent_execution_id is None:
                        paused.pot_spent_usd = ctx.budget.spent_usd
                    return "waiting_approval", paused, None
            if watch in done:
                watch.result()  # raises _ClaimLost
                return "cancelled", None, "Stopped on request."
            if pot_binds:
                return (
                    "timed_out",
                    None,
                    "Stopped: the calling run's time budget (its limits.timeoutSeconds) ran out.",
                )
            return "timed_out", None, f"Stopped after {limits.timeoutSeconds} s (limits.timeoutSeconds)."
        finally:
            for task in (loop, watch):
                task.cancel()
            if ctx.sandbox is not None:
                await _kill_quietly(ctx.sandbox)  # stops running code at once, before unwinding
            await asyncio.gather(loop, watch, return_exceptions=True)

    async def _agent_loop(self, ctx: RunContext, totals: _Totals) -> str:
        spec, limits, recorder = ctx.spec, ctx.spec.limits, ctx.recorder
        toolbox = await ToolBox.for_spec(ctx)
        tools = toolbox.definitions() or None
        model_cfg = spec.spec.model
        llm, default_model = await self.llm_for(ctx.execution.team_id)
        model = model_cfg.name if model_cfg and model_cfg.name else default_model
        temperature = model_cfg.temperature if model_cfg else None
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system_prompt(spec, ctx.execution.inputs)},
            {"role": "user", "content": user_prompt(ctx.execution.inputs)},
        ]
        gate, first_step = ctx.approvals, 0
        if gate is not None and gate.resume is not None:  # go on where it paused: the decided step's calls
            waited = gate.resume
            messages, first_step = waited.messages, waited.step + 1
            ctx.citations.passages.update(waited.citations)
            await self._tool_steps(
                ctx, toolbox, waited.step, waited.calls, waited.call_event_seq, messages, waited.open_call_seq
            )
        for _step in range(first_step, limits.maxSteps):
            result = await llm.chat(messages, tools, model=model, temperature=temperature)
            totals.tokens_in += result.usage.prompt_tokens
            totals.tokens_out += result.usage.completion_tokens
            cost = usd(result.cost_usd)
            totals.cost_usd += cost
            ctx.budget.spent_usd += cost
            call_event = await recorder.record(
                "llm_call",
                name=result.model or model,
                payload={
                    "content": result.content,
                    "finish_reason": result.finish_reason,
                    "tool_calls": [
                        {"id": c.id, "name": c.name, "arguments": c.arguments} for c in result.tool_calls
                    ],
                    **({} if result.price_known else {"price_unknown": True}),
                },
                tokens_in=result.usage.prompt_tokens,
                tokens_out=result.usage.completion_tokens,
                cost_usd=cost,
                duration_ms=result.duration_ms,
            )
            if totals.cost_usd >= usd(limits.maxCostUsd):  # as stored: a float limit is not exact
                raise _Stop(
                    "failed",
                    f"Stopped: the run cost ${totals.cost_usd:.4f}, reaching "
                    f"limits.maxCostUsd (${limits.maxCostUsd}).",
                )
            if ctx.budget.spent_usd >= ctx.budget.limit_usd:  # one pot with the sub-agents
                whose = "the calling run's" if ctx.execution.parent_execution_id else "this run's"
                raise _Stop(
                    "failed",
                    f"Stopped: this run and its sub-agents cost ${ctx.budget.spent_usd:.4f} together, "
                    f"reaching {whose} limits.maxCostUsd (${ctx.budget.limit_usd.normalize()}).",
                )
            messages.append(result.to_message())
            if not result.tool_calls:
                return result.content or ""
            if gate is not None:
                gate.pause_if_asked(toolbox, _step, result, call_event.seq, messages)  # raises Paused
            await self._tool_steps(ctx, toolbox, _step, result.tool_calls, call_event.seq, messages)
        raise _Stop(
            "failed", f"Stopped after {limits.maxSteps} steps without a final answer (limits.maxSteps)."
        )

    async def _tool_steps(
        self,
        ctx: RunContext,
        toolbox: ToolBox,
        step: int,
        calls: list[Any],
        parent_seq: int,
        messages: list[dict[str, Any]],
        open_call_seq: int | None = None,
    ) -> None:
        """The calls of one step in order. A sub-agent that waits for approval pauses this run at
        its call; resumed, that call goes on in its recorded step (`open_call_seq`)."""
        for i, call in enumerate(calls):
            try:
                await self._tool_step(
                    ctx, toolbox, call, parent_seq, messages, open_call_seq if i == 0 else None
                )
            except approvals.ChildWaits as waits:
                raise approvals.Paused(step, calls[i:], "", parent_seq, messages, [], child=waits) from None

    async def _tool_step(
        self,
        ctx: RunContext,
        toolbox: ToolBox,
        call: Any,
        parent_seq: int,
        messages: list[dict[str, Any]],
        tool_seq: int | None = None,
    ) -> None:
        recorder, gate = ctx.recorder, ctx.approvals
        started = time.perf_counter()
        if tool_seq is None:  # else: the step was recorded before the run waited for its sub-agent
            tool_seq = (
                await recorder.record(
                    "tool_call",
                    name=call.name,
                    parent_seq=parent_seq,
                    payload={
                        "id": call.id,
                        "arguments": call.arguments,
                        **(gate.describe(call) if gate else {}),
                    },
                )
            ).seq
        try:
            if gate is not None:  # approval rules and decisions (an approved call runs at most once)
                text, ok = await gate.call(toolbox, call, tool_seq), True
            else:
                text, ok = await toolbox.call(call.name, call.arguments, tool_seq), True
        except ToolFailed as exc:
            text, ok = f"Error: {exc}", False
        images = toolbox.images.pop(tool_seq, None)
        await recorder.record(
            "tool_result",
            name=call.name,
            parent_seq=tool_seq,
            payload={"ok": ok, "content": text, **({"images": images} if images else {})},
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        # what the model reads back is redacted like the stored step (a tool may echo a secret)
        messages.append({"role": "tool", "tool_call_id": call.id, "content": recorder.redact(text)})

    async def _open_sandbox(self, spec: AgentSpec, execution: Execution) -> Any:
        if self._sandbox_opener is not None:
            return await self._sandbox_opener(spec, execution)
        from coherex.sandbox import open_sandbox

        runtime = spec.spec.runtime
        sandbox = await open_sandbox(
            self.settings,
            template=runtime.template if runtime else None,
            timeout=spec.limits.timeoutSeconds + 30,
            allow_network=bool(runtime and runtime.network),
            metadata={"execution_id": str(execution.id), "team_id": str(execution.team_id)},
        )
        # Cloud sandboxes install what the spec asks for; the local one has no network and ships
        # the data stack (numpy, pandas, matplotlib, plotly) preinstalled.
        if runtime and runtime.packages and self.settings.sandbox == "e2b":
            done = await sandbox.commands.run(
                "pip install --quiet " + " ".join(shlex.quote(p) for p in runtime.packages), timeout=300
            )
            if done.exit_code != 0:  # code that imports them would fail later, less clearly
                await _kill_quietly(sandbox)
                why = " ".join((done.stderr or done.stdout or "").strip().splitlines()[-2:])
                raise UserError(
                    f"Installing runtime.packages ({', '.join(runtime.packages)}) failed: {why[-500:]}",
                    hint="Check the names and versions in the spec; the sandbox must reach PyPI.",
                )
        return sandbox

    def _secrets(self) -> list[str]:
        """What the platform hides from a run's steps and output: its keys and the database URL's
        credentials (redaction keeps a URL's host and port: `vault.secret_parts`)."""
        s = self.settings
        return [
            v.get_secret_value() for v in (s.openai_api_key, s.e2b_api_key, s.secret_key, s.database_url) if v
        ]

    # ------------------------------------------------------------------ control
    async def stop(self, identity: Identity, execution_id: UUID) -> Execution:
        async with self.db.session(identity) as s:
            row = await s.executions.request_cancel(execution_id)
            if row is None:
                raise NotFound(f"Execution {execution_id} was not found (or you cannot see it).")
            await s.audit.record(
                row.team_id, "execution.stop", target_type="execution", target_id=str(row.id)
            )
        return row

    async def recover_stale(
        self, *, older_than_seconds: float | None = None, max_attempts: int | None = None
    ) -> list[Execution]:
        """Executions whose worker died (3 missed heartbeats): back to `pending` for a retry, or
        `failed` after max_attempts."""
        older_than_seconds = (
            3 * self.settings.heartbeat_seconds if older_than_seconds is None else older_than_seconds
        )
        max_attempts = max_attempts or self.settings.max_attempts
        changed = []
        async with self.db.session(Identity.system()) as s:
            for ex in await s.executions.stale(older_than_seconds):
                if ex.parent_execution_id is not None:  # ran inside its parent: the parent's retry calls anew
                    row = await s.executions.finish(
                        ex.id,
                        "failed",
                        error="The worker running its calling run stopped responding.",
                        tokens_in=ex.tokens_in,
                        tokens_out=ex.tokens_out,
                        cost_usd=ex.cost_usd,
                    )
                elif ex.attempts < max_attempts:
                    row = await s.executions.requeue(ex.id)
                else:
                    row = await s.executions.finish(
                        ex.id,
                        "failed",
                        error=f"Its worker stopped responding {ex.attempts} times; giving up.",
                        tokens_in=ex.tokens_in,
                        tokens_out=ex.tokens_out,
                        cost_usd=ex.cost_usd,
                    )
                if row is not None:
                    changed.append(row)
        return changed


# ---------------------------------------------------------------------- helpers
async def _watch_claim(claim: Claim) -> None:
    """Returns when a stop was asked for; raises _ClaimLost when the execution is no longer ours.
    Only reads what the claim keeper's thread found (no query of its own)."""
    while True:
        if claim.lost:
            raise _ClaimLost()
        if claim.cancel_requested:
            return
        await asyncio.sleep(CLAIM_POLL_SECONDS)


def system_prompt(spec: AgentSpec, inputs: dict[str, Any]) -> str:
    template = (PROMPTS / "runtime_system.md").read_text()
    uses_knowledge = any(ref.use == "knowledge.search" for ref in spec.spec.tools or [])
    return template.format(
        name=spec.metadata.name,
        description=spec.metadata.description or "",
        instructions=render_instructions(spec, inputs),
        knowledge_rule=("\n" + CITATION_RULE) if uses_knowledge else "",
    )


def _safe_names(files: dict[str, bytes]) -> dict[str, bytes]:
    """Uploaded files keep only their base name: no directories, no `..`."""
    out = {}
    for name, data in files.items():
        base = Path(name).name
        if not base or base in (".", "..") or base.startswith("."):
            raise UserError(f"{name!r} is not a usable file name for an upload.")
        out[base] = data
    return out


def user_prompt(inputs: dict[str, Any]) -> str:
    if not inputs:
        return "Run now."
    lines = "\n".join(f"- {k}: {v}" for k, v in inputs.items())
    return f"Run now with these inputs:\n{lines}"


def check_inputs(spec: AgentSpec, given: dict[str, Any]) -> dict[str, Any]:
    """Inputs with defaults filled in; unknown, missing or mistyped ones are a UserError naming each."""
    declared = spec.spec.inputs or {}
    problems = [
        f"unknown input {k!r} (this agent takes: {', '.join(declared) or 'no inputs'})"
        for k in given
        if k not in declared
    ]
    out: dict[str, Any] = {}
    for name, decl in declared.items():
        if name in given:
            value = _coerce(given[name], decl.type)
            if value is None:
                problems.append(f"input {name!r} must be of type {decl.type}, got {given[name]!r}")
                continue
            if decl.enum and value not in decl.enum:
                problems.append(f"input {name!r} must be one of {decl.enum}, got {value!r}")
                continue
            out[name] = value
        elif decl.default is not None:
            out[name] = decl.default
        else:
            problems.append(
                f"input {name!r} is required" + (f" ({decl.description})" if decl.description else "")
            )
    if problems:
        raise UserError("Cannot start the run:\n  " + "\n  ".join(problems))
    return out


def _coerce(value: Any, json_type: str) -> Any:
    """Command-line and webhook inputs arrive as strings; accept them when they parse as the type."""
    import json

    if json_type == "string":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    return value if checks.get(json_type, lambda v: True)(value) else None


async def check_quota(session: Session, team_id: UUID) -> None:
    team = await session.teams.get(team_id)
    if team is None:
        return
    usage = await session.audit.usage(team_id)
    if team.quota_executions_month is not None and usage.executions >= team.quota_executions_month:
        raise QuotaExceeded(
            f"Team {team.slug} has used its {team.quota_executions_month} executions for this month.",
            hint="An admin can raise the quota (`coherex teams quota`), or wait for next month.",
        )
    if team.quota_cost_month_usd is not None and usage.cost_usd >= team.quota_cost_month_usd:
        raise QuotaExceeded(
            f"Team {team.slug} has spent ${usage.cost_usd:.2f} of its ${team.quota_cost_month_usd:.2f} "
            "monthly budget.",
            hint="An admin can raise the budget, or wait for next month.",
        )


async def _kill_quietly(sandbox: Any) -> None:
    try:
        await sandbox.kill()
    except Exception:
        log.warning("could not kill sandbox %s", getattr(sandbox, "id", "?"), exc_info=True)


async def _record_quietly(
    recorder: EventRecorder, type: str, payload: dict[str, Any], name: str = ""
) -> None:
    try:
        await recorder.record(type, name=name, payload=payload)
    except Exception:
        log.warning("could not record %s event", type, exc_info=True)
