"""Sub-agents: an agent calls another agent of its team as a tool.

The call is an execution of its own (`parent_execution_id`, `parent_event_seq`, `depth`), run by
the same worker inside the parent's tool step, under the callee's own data-source grants. The
parent's cost limit and time budget are one pot shared with every run below it (`Budget`).
Stopping the parent stops its children: a cancelled tool step asks its child to stop and waits for
it to end, so no child is left running. A child has no job of its own: when its worker dies it
fails, and the parent's retry starts a new child.

A child whose call needs approval pauses like any run, and its caller pauses with it at the tool
step that called it (up to the root, which is what `ps`, the chat and the dashboard show waiting).
The last decision resumes the root (it gets the job); the root's resumed tool step finds the child
it started there (by `parent_event_seq`) and runs it on from its own pause, in the same pot. Time
spent waiting for a person counts for neither.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

from coherex.errors import CoherexError
from coherex.spec import AgentSpec, load_spec
from coherex.spec.catalogue import ToolInfo
from coherex.store.db import Identity
from coherex.store.models import Execution

if TYPE_CHECKING:
    from coherex.runtime.tools import RunContext
    from coherex.spec import ToolRef

log = logging.getLogger(__name__)

_STOP_WAIT_SECONDS = 15.0  # how long a stopped parent waits for its child to write its end


@dataclass
class Budget:
    """The cost and time a run shares with its sub-agents (the root run's limits)."""

    limit_usd: Decimal
    deadline: float  # time.monotonic() at which the root's time is up
    spent_usd: Decimal = Decimal(0)

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@dataclass(frozen=True)
class SubAgent:
    """A `use: agent` tool of a run: the pinned callee and what the model is told of it."""

    tool_name: str
    agent_id: UUID
    agent: str
    version: int
    spec: AgentSpec
    info: ToolInfo = field(compare=False)


async def load(ctx: RunContext, pins: dict[str, Any]) -> dict[str, SubAgent]:
    """The callees a version pinned when it was saved (tool name → SubAgent)."""
    found: dict[str, SubAgent] = {}
    async with ctx.db.session(Identity.system()) as s:
        for tool_name, pin in (pins or {}).items():
            version = await s.agents.get_version(UUID(pin["agent_id"]), pin["version"])
            if version is None:  # deleted since: the call says so when the model makes it
                continue
            spec = load_spec(version.spec)
            found[tool_name] = SubAgent(
                tool_name, version.agent_id, pin["agent"], version.version, spec, _info(spec)
            )
    return found


def _info(spec: AgentSpec) -> ToolInfo:
    """The callee as a tool: its description, and its inputs as the parameters."""
    props: dict[str, Any] = {}
    required = []
    for name, item in (spec.spec.inputs or {}).items():
        schema: dict[str, Any] = {"type": item.type}
        if item.description:
            schema["description"] = item.description
        if item.enum:
            schema["enum"] = list(item.enum)
        props[name] = schema
        if item.default is None:  # an input without a default must be given
            required.append(name)
    parameters: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        parameters["required"] = required
    description = spec.metadata.description or f"Run the agent {spec.metadata.name}."
    return ToolInfo(
        "agent",
        "agent",
        f"Agent {spec.metadata.name}: {description} Returns its answer.",
        parameters=parameters,
    )


async def call(ctx: RunContext, ref: ToolRef, args: dict[str, Any], tool_seq: int) -> dict[str, Any]:
    """Run the callee as a child of this run; its answer, or ToolFailed with why it did not answer."""
    from coherex.runtime.engine import check_inputs
    from coherex.runtime.tools import ToolFailed

    sub = ctx.sub_agents.get(ref.tool_name)
    if sub is None:
        raise ToolFailed(f"The agent {ref.agent!r} this tool calls no longer exists in the team.")
    runtime, parent = ctx.runtime, ctx.execution
    async with ctx.db.session(Identity.system()) as s:
        started = [c for c in await s.executions.children(parent.id) if c.parent_event_seq == tool_seq]
    if started:  # this run waited for that child's approval and was resumed: the child goes on
        return await _run_child(ctx, sub, started[0], tool_seq)
    depth = parent.depth + 1
    if depth > runtime.settings.max_agent_depth:
        raise ToolFailed(
            f"Calling {sub.agent} would nest agents {depth} deep; the limit is "
            f"{runtime.settings.max_agent_depth} (COHEREX_MAX_AGENT_DEPTH)."
        )
    if ctx.budget.seconds_left() <= 0:
        raise ToolFailed("No time is left in this run's budget to call another agent.")
    try:
        inputs = check_inputs(sub.spec, args)
        async with ctx.db.session(ctx.identity) as s:  # the caller's owner must be able to see the callee
            callee = await s.agents.get(sub.agent_id)
            if callee is None:
                raise ToolFailed(f"The agent {sub.agent!r} is not visible to this agent any more.")
            child = await s.executions.create(
                parent.team_id,
                sub.agent_id,
                sub.version,
                trigger="agent",
                inputs=inputs,
                parent=(parent.id, tool_seq, depth),
            )
    except CoherexError as exc:
        if isinstance(exc, ToolFailed):
            raise
        raise ToolFailed(f"Cannot call {sub.agent}: {exc}") from exc
    await ctx.recorder.record(
        "log",
        name="sub_agent",
        parent_seq=tool_seq,
        payload={"execution_id": str(child.id), "agent": sub.agent, "version": sub.version, "depth": depth},
    )
    return await _run_child(ctx, sub, child, tool_seq)


async def _run_child(ctx: RunContext, sub: SubAgent, child: Execution, tool_seq: int) -> dict[str, Any]:
    from coherex.runtime.approvals import ChildWaits
    from coherex.runtime.tools import ToolFailed

    runtime = ctx.runtime
    task = asyncio.create_task(
        runtime.run(child.id, listeners=list(ctx.recorder.listeners), budget=ctx.budget)
    )
    try:
        final = await asyncio.shield(task)
    except asyncio.CancelledError:
        # the parent is stopping (stop request, timeout, lost claim): its child stops too, and ends
        # written before the parent goes on unwinding
        await _stop(ctx, child.id)
        await asyncio.wait({task}, timeout=_STOP_WAIT_SECONDS)
        raise
    answer = final.output.get("text") if isinstance(final.output, dict) else final.output
    if final.status == "waiting_approval":  # paused durably: this run waits with it
        async with ctx.db.session(Identity.system()) as s:
            waiting = await s.approvals.pending(final.team_id, execution_id=final.id)
        raise ChildWaits(final.id, sub.agent, tool_seq, [str(a.id) for a in waiting])
    if final.status != "completed":
        why = final.error or final.status.replace("_", " ")
        raise ToolFailed(f"The agent {sub.agent} did not answer ({final.status}): {why}")
    result: dict[str, Any] = {"agent": sub.agent, "execution_id": str(child.id), "answer": answer}
    if isinstance(final.output, dict) and final.output.get("sources"):
        result["sources"] = final.output["sources"]
    if final.tool_errors:
        result["tool_errors"] = final.tool_errors
    return result


async def _stop(ctx: RunContext, execution_id: UUID) -> None:
    try:
        async with ctx.db.session(Identity.system()) as s:
            await s.executions.request_cancel(execution_id)
    except CoherexError:  # the child's own deadline still ends it
        log.warning("could not ask sub-agent run %s to stop", execution_id)
