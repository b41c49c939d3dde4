"""Human approval of tool calls: the rules, the durable pause, the decisions, the timeout.

A step whose model asks for a call that needs approval (`approval:` of the tool, or the team's
default) runs none of its calls: the run pauses. Its state — the conversation so far, totals, step,
citations — is stored on the execution, which goes to `waiting_approval` with no worker and no
sandbox; one `execution_approvals` row per waiting call. When the last call of the step is decided,
the same transaction puts the execution back to `pending` with a job; any worker resumes it from
the stored state: earlier steps are not run again, and the step's calls run in order, each approved
call at most once (its row is marked before the call and keeps the result, so a retry after a
crash reuses it instead of acting twice).

Rules are checked deny, then ask (`when`), then allow, against the arguments the call will run
with (the spec's fixed `with:` included).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any
from uuid import UUID

import jsonschema

from coherex.errors import Conflict, NotFound, PermissionDenied, UserError
from coherex.spec import ToolRef, load_spec
from coherex.spec.catalogue import ToolInfo, get_tool
from coherex.spec.models import ApprovalRules, Limits
from coherex.store.db import Database, Identity
from coherex.store.models import Execution
from coherex.store.repos.approvals import Approval

if TYPE_CHECKING:
    from coherex.llm.types import ToolCall
    from coherex.runtime.tools import ToolBox

log = logging.getLogger(__name__)

ASK, DENY, ALLOW = "ask", "deny", "allow"
ACTIONS = {"approve": "approved", "edit": "edited", "reject": "rejected"}


# ---------------------------------------------------------------------- rules
def verdict(ref: ToolRef, info: ToolInfo | None, args: dict[str, Any], team_default: str = "never") -> str:
    """deny | ask | allow for one call with these (merged) arguments."""
    rule = ref.approval
    if isinstance(rule, ApprovalRules):
        if any(_matches(m, args) for m in rule.rules("deny")):
            return DENY
        if any(_matches(m, args) for m in rule.rules("when")):
            return ASK
        if any(_matches(m, args) for m in rule.rules("allow")):
            return ALLOW
        mode: str = rule.fallback
    else:
        mode = rule or team_default
    if mode == "always" or (mode == "writes" and info is not None and info.access == "write"):
        return ASK
    return ALLOW


def _matches(patterns: dict[str, str], args: dict[str, Any]) -> bool:
    return bool(patterns) and all(
        key in args and fnmatchcase(_text(args[key]).strip().lower(), pattern.strip().lower())
        for key, pattern in patterns.items()
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


# ---------------------------------------------------------------------- the run's side
class ChildWaits(Exception):  # noqa: N818 - a signal, like Paused, not an error
    """Raised by a sub-agent call: the child run paused for approval (its calls are the approvals
    a person decides), so the calling run pauses too, at this tool step, until the child can go on."""

    def __init__(self, execution_id: UUID, agent: str, tool_seq: int, approval_ids: list[str]):
        super().__init__(f"sub-agent run {execution_id} waits for approval")
        self.execution_id, self.agent, self.tool_seq, self.approval_ids = (
            execution_id,
            agent,
            tool_seq,
            approval_ids,
        )


class Paused(Exception):
    """Raised by the agent loop: this step waits for approval. Either nothing of it ran (`asks`:
    its calls that need approval), or a sub-agent it called waits (`child`): then `calls` are the
    step's calls from that one on, and `messages` hold the results of those before it."""

    def __init__(
        self,
        step: int,
        calls: list[Any],
        reason: str,
        call_event_seq: int,
        messages: list[dict[str, Any]],
        asks: list[tuple[Any, ToolRef]],
        child: ChildWaits | None = None,
    ):
        super().__init__(f"step {step} waits for approval")
        self.step, self.calls, self.reason, self.call_event_seq = step, calls, reason, call_event_seq
        self.messages, self.asks, self.child = messages, asks, child
        self.active_seconds = 0.0
        self.pot_spent_usd: Decimal | None = None  # what the run and its sub-agents spent (a root run)


@dataclass
class _Call:
    """A tool call as stored in the resume state (the LLM client's ToolCall has the same fields)."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Resume:
    step: int
    call_event_seq: int
    calls: list[_Call]
    messages: list[dict[str, Any]]
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    citations: dict[str, Any]
    active_seconds: float
    open_call_seq: int | None = None  # the tool step of `calls[0]` whose sub-agent waited, if one did
    pot_spent_usd: Decimal | None = None

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Resume:
        return cls(
            state["step"],
            state["call_event_seq"],
            [_Call(**c) for c in state["calls"]],
            state["messages"],
            state["tokens_in"],
            state["tokens_out"],
            Decimal(state["cost_usd"]),
            state.get("citations") or {},
            float(state.get("active_seconds") or 0),
            state.get("open_call_seq"),
            Decimal(state["pot_spent_usd"]) if state.get("pot_spent_usd") else None,
        )


@dataclass
class Gate:
    """The approval side of one run: checks calls, and runs the decided calls of a resumed step."""

    db: Database
    team_default: str = "never"
    resume: Resume | None = None
    decisions: dict[str, Approval] = field(default_factory=dict)  # tool call id → decided row (resumed step)

    @classmethod
    async def load(cls, db: Database, execution: Execution) -> Gate:
        async with db.session(Identity.system()) as s:
            default = await s.approvals.team_default(execution.team_id)
            state = await s.approvals.resume_state(execution.id)
            decided = await s.approvals.of_step(execution.id, state["step"]) if state else []
        return cls(
            db, default, Resume.from_state(state) if state else None, {a.tool_call_id: a for a in decided}
        )

    def check(self, toolbox: ToolBox, call: ToolCall) -> str:
        tool = toolbox.tools.get(call.name)
        if tool is None:
            return ALLOW  # the toolbox tells the model there is no such tool
        return verdict(tool.ref, tool.info, {**call.arguments, **(tool.ref.with_ or {})}, self.team_default)

    def pause_if_asked(
        self, toolbox: ToolBox, step: int, result: Any, call_event_seq: int, messages: list[dict[str, Any]]
    ) -> None:
        asks = [(c, toolbox.tools[c.name].ref) for c in result.tool_calls if self.check(toolbox, c) == ASK]
        if asks:
            raise Paused(step, list(result.tool_calls), result.content or "", call_event_seq, messages, asks)

    def describe(self, call: ToolCall) -> dict[str, Any]:
        """What the tool_call event says about the call's approval (empty when it needed none)."""
        a = self.decisions.get(call.id)
        if a is None:
            return {}
        return {
            "approval": {
                "id": str(a.id),
                "status": a.status,
                "decided_by": str(a.decided_by or "") or None,
                **({"arguments": a.edited_arguments} if a.status == "edited" else {}),
            }
        }

    async def call(self, toolbox: ToolBox, call: ToolCall, parent_seq: int) -> str:
        """Run one call as its approval says; returns the text for the model. Raises ToolFailed."""
        from coherex.runtime.tools import ToolFailed

        decision = self.decisions.get(call.id)
        if decision is None:
            if self.check(toolbox, call) == DENY:
                raise ToolFailed(
                    f"{call.name} with these arguments is refused by the agent's approval rules "
                    "(approval.deny); do not try it again."
                )
            return await toolbox.call(call.name, call.arguments, parent_seq)
        if decision.status == "rejected":
            said = f": {decision.message}" if decision.message else "."
            raise ToolFailed(f"A person rejected this call, so it was not run{said}")
        if decision.status == "expired":
            raise ToolFailed(
                "Nobody approved this call in time (limits.approvalTimeoutSeconds), so it was not run."
            )
        if decision.result is not None:  # an earlier attempt ran it: the same answer, no second call
            if not decision.result.get("ok"):
                raise ToolFailed(str(decision.result["text"]).removeprefix("Error: "))
            return str(decision.result["text"])
        async with self.db.session(Identity.system()) as s:
            first = await s.approvals.start_call(decision.id)
        if not first:
            raise ToolFailed(
                "This approved call was started by an earlier attempt that stopped before it "
                "returned; whether it took effect is unknown. Check before doing it again."
            )
        args = decision.edited_arguments if decision.status == "edited" else call.arguments
        try:
            text, ok = await toolbox.call(call.name, args or {}, parent_seq), True
        except ToolFailed as exc:
            text, ok = str(exc), False
        except ChildWaits:  # an approved sub-agent call whose child now waits: it goes on later
            async with self.db.session(Identity.system()) as s:
                await s.approvals.unstart_call(decision.id)
            raise
        async with self.db.session(Identity.system()) as s:
            await s.approvals.save_result(decision.id, text if ok else f"Error: {text}", ok)
        if not ok:
            raise ToolFailed(text)
        return text


async def pause(
    session: Any,
    recorder: Any,
    execution: Execution,
    claim: Any,
    paused: Paused,
    totals: Any,
    citations: dict[str, Any],
    limits: Limits,
) -> tuple[Execution, list[Any]]:
    """Store the pause (claim owner only) with its approvals and events, in the caller's transaction."""
    state = {
        "step": paused.step,
        "call_event_seq": paused.call_event_seq,
        "calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in paused.calls],
        "messages": paused.messages,
        "tokens_in": totals.tokens_in,
        "tokens_out": totals.tokens_out,
        "cost_usd": str(totals.cost_usd),
        "citations": citations,
        "active_seconds": paused.active_seconds,
        "open_call_seq": paused.child.tool_seq if paused.child else None,
        "pot_spent_usd": str(paused.pot_spent_usd) if paused.pot_spent_usd is not None else None,
    }
    final = await session.approvals.pause(
        execution.id,
        (claim.worker_id, claim.attempt),
        state,
        tokens_in=totals.tokens_in,
        tokens_out=totals.tokens_out,
        cost_usd=totals.cost_usd,
    )
    if final is None:  # no longer this run's (taken over, or stopped): write nothing
        return await session.executions.get(execution.id), []
    events = []
    for call, ref in paused.asks:
        row = await session.approvals.add(
            execution,
            step=paused.step,
            tool_call_id=call.id,
            tool_name=call.name,
            tool_use=ref.use,
            arguments=recorder.redact(call.arguments),
            reason=recorder.redact(paused.reason)[:4000],
            timeout_seconds=limits.approvalTimeoutSeconds,
            on_timeout=limits.onApprovalTimeout,
        )
        events.append(
            await recorder.add(
                session,
                "approval_requested",
                name=call.name,
                parent_seq=paused.call_event_seq,
                payload={
                    "approval_id": str(row.id),
                    "tool_call_id": call.id,
                    "tool": ref.use,
                    "arguments": call.arguments,
                    "reason": paused.reason,
                    "expires_at": row.expires_at.isoformat(),
                },
            )
        )
    waits = paused.child
    events.append(
        await recorder.add(
            session,
            "status",
            name="waiting_approval",
            payload={
                "status": "waiting_approval",
                "approvals": [e.payload["approval_id"] for e in events]
                + (waits.approval_ids if waits else []),
                **(
                    {"waiting_for": {"execution_id": str(waits.execution_id), "agent": waits.agent}}
                    if waits
                    else {}
                ),
            },
        )
    )
    return final, events


async def notify_quietly(db: Database, execution: Execution, events: list[Any]) -> None:
    """Tell the team's approval channel and e-mail addresses (if it set them) what waits, with where
    to decide. A failed notification is logged and changes nothing: the calls wait all the same."""
    asked = [e for e in events if e.type == "approval_requested"]
    if not asked:
        return
    try:
        async with db.session(Identity.system()) as s:
            target = await s.approvals.team_notify(execution.team_id)
            agent = await s.agents.get(execution.agent_id)
            team = await s.teams.get(execution.team_id)
    except Exception:  # never fail or block the run's pause for a notification
        log.warning("could not read where to announce approvals of %s", execution.id, exc_info=True)
        return
    if not target:
        return
    name = agent.name if agent else "An agent"
    if target.get("source"):
        await _quietly(execution, "Slack", _slack(db, execution, target, name, asked))
    if target.get("email"):
        await _quietly(
            execution, "e-mail", _mail(db, execution, target["email"], name, team.slug if team else "", asked)
        )


async def _quietly(execution: Execution, how: str, sending: Any) -> None:
    try:
        await sending
    except Exception:  # one channel failing must not stop the other, nor the pause
        log.warning(
            "could not notify by %s about approvals of execution %s", how, execution.id, exc_info=True
        )


def _base_url() -> str:
    from coherex.settings import get_settings

    return (get_settings().public_url or "").rstrip("/")


async def _slack(
    db: Database, execution: Execution, target: dict[str, Any], name: str, asked: list[Any]
) -> None:
    from coherex.integrations.service import notify_team

    base = _base_url()
    lines = [f"*{name}* waits for approval ({execution.trigger} run {str(execution.id)[:12]}):"]
    for e in asked:
        short = str(e.payload.get("approval_id", ""))[:8]
        args = json.dumps(e.payload.get("arguments") or {}, ensure_ascii=False)
        lines.append(
            f"• {e.name} {args[:300]} — `coherex approvals approve {short}`"
            + (f" or {base}/api/approvals/{e.payload.get('approval_id')}" if base else "")
        )
    if base:
        lines.append(f"Decide in the dashboard (Approvals) or the chat: {base}/chat")
    await notify_team(db, execution.team_id, target["source"], target["channel"], "\n".join(lines))


async def _mail(
    db: Database, execution: Execution, to: list[str], name: str, team_slug: str, asked: list[Any]
) -> None:
    """One message per paused step: the agent, each call with its (redacted) arguments and the
    model's reason, and links to a page where a signed-in member approves or rejects (opening a link
    decides nothing: mail scanners open links too)."""
    from coherex import mail

    base = _base_url()
    calls = ", ".join(dict.fromkeys(e.name for e in asked))
    lines = [
        f"The agent {name} (team {team_slug}) waits for approval before it acts.",
        f"Run {execution.id} ({execution.trigger}).",
    ]
    for e in asked:
        approval_id = e.payload.get("approval_id", "")
        args = json.dumps(e.payload.get("arguments") or {}, ensure_ascii=False, indent=2)
        lines += ["", f"{e.name} ({e.payload.get('tool', '')}) with the arguments:", args[:3000]]
        if e.payload.get("reason"):
            lines.append(f"The model's reason: {str(e.payload['reason'])[:1000]}")
        if base:
            link = f"{base}/approvals/{approval_id}?team={team_slug}"
            lines += [f"Approve: {link}&decision=approve", f"Reject:  {link}&decision=reject"]
        lines.append(f"Or: coherex approvals approve|reject {str(approval_id)[:8]}")
        if e.payload.get("expires_at"):
            lines.append(f"It waits until {e.payload['expires_at']} (limits.approvalTimeoutSeconds).")
    if not base:
        lines += ["", "(Set COHEREX_PUBLIC_URL to get links in these mails.)"]
    await mail.send(to, f"[Coherex] {name} waits for approval: {calls}", "\n".join(lines) + "\n")
    async with db.session(Identity.system()) as s:
        await s.audit.record(
            execution.team_id,
            "approval.notify",
            target_type="execution",
            target_id=str(execution.id),
            actor_kind="system",
            details={"email": to},
        )


# ---------------------------------------------------------------------- people's side
@dataclass
class Decided:
    approval: Approval
    resumed: bool  # this decision was the step's last: the run is queued again
    new_version: int | None  # "always allow" saved this version of the agent
    queued: UUID | None = None  # the run that was queued: this one, or the root that called it


async def decide(
    db: Database,
    identity: Identity,
    approval_id: UUID,
    action: str,
    *,
    arguments: dict[str, Any] | None = None,
    message: str | None = None,
    always_allow: bool = False,
) -> Decided:
    """approve | edit (approve with `arguments`) | reject (with `message`, which the model reads).
    Once: a second decision of the same call is a Conflict. Members and above of the agent's team."""
    if action not in ACTIONS:
        raise UserError(f"{action!r} is not a decision; use approve, edit or reject.")
    if action == "edit" and not isinstance(arguments, dict):
        raise UserError("An edit needs the new arguments (a JSON object).")
    if action != "edit" and arguments is not None:
        raise UserError("Arguments can only be given with the edit decision.")
    if message is not None and len(message) > 4000:
        raise UserError("The message is too long (at most 4000 characters).")
    async with db.session(identity) as s:
        current = await s.approvals.get(approval_id)
        if current is None:
            raise NotFound(
                f"Approval {approval_id} was not found (or you cannot see it).",
                hint="`coherex approvals list` shows what waits.",
            )
        execution = await s.approvals.lock_execution(current.execution_id)  # FOR UPDATE: members only
        if execution is None:
            raise PermissionDenied(
                "Deciding on a tool call needs the member role or above in the agent's team.",
                hint="An admin can change your role: `coherex teams role EMAIL member`.",
            )
        current = await s.approvals.get(approval_id)  # after the lock: what others decided meanwhile
        assert current is not None  # it was there, and its execution is locked
        if current.status != "pending":
            raise Conflict(
                f"This call was already {current.status}"
                + (f" at {current.decided_at:%Y-%m-%d %H:%M:%S} UTC." if current.decided_at else ".")
            )
        version = await s.agents.get_version(execution.agent_id, execution.agent_version)
        assert version is not None  # the locked execution refers to it
        spec = load_spec(version.spec)
        ref = next((t for t in spec.spec.tools or [] if t.tool_name == current.tool_name), None)
        if action == "edit":
            assert arguments is not None  # checked above: an edit carries a JSON object
            _check_arguments(ref, current.tool_use, arguments)
        row = await s.approvals.decide(
            approval_id, ACTIONS[action], edited_arguments=arguments, message=message
        )
        if row is None:
            raise PermissionDenied(
                "Deciding on a tool call needs the member role or above in the agent's team."
            )
        await s.executions.add_event(
            execution,
            "approval_decided",
            name=row.tool_name,
            payload={
                "approval_id": str(row.id),
                "tool_call_id": row.tool_call_id,
                "status": row.status,
                "decided_by": str(row.decided_by),
                "message": message,
                **({"arguments": arguments} if action == "edit" else {}),
            },
        )
        await s.audit.record(
            execution.team_id,
            f"approval.{action}",
            target_type="execution",
            target_id=str(execution.id),
            details={
                "approval_id": str(row.id),
                "tool": row.tool_use,
                "call": row.tool_name,
                "arguments": row.arguments,
                **({"edited_arguments": arguments} if action == "edit" else {}),
                **({"message": message} if message else {}),
                **({"always_allow": True} if always_allow else {}),
            },
        )
        queued = await s.approvals.resume(execution.id)
        new_version = None
        if always_allow and ref is not None:
            new_version = await _always_allow(s, execution, row.tool_name)
    return Decided(row, queued is not None, new_version, queued.id if queued else None)


def _check_arguments(ref: ToolRef | None, tool_use: str, arguments: dict[str, Any]) -> None:
    info = get_tool(tool_use)
    if ref is None or info is None:
        return
    schema = info.llm_parameters(ref.with_)
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(arguments), key=lambda e: list(e.path)
    )
    if errors:
        lines = [f"{'.'.join(map(str, e.path)) or 'arguments'}: {e.message}" for e in errors[:10]]
        raise UserError(
            f"The edited arguments do not fit {tool_use}:\n  " + "\n  ".join(lines),
            hint=f"arguments of {tool_use}: {', '.join(schema.get('properties', {})) or 'none'}",
        )


async def _always_allow(s: Any, execution: Execution, tool_name: str) -> int | None:
    """A new version of the agent with this tool's approval rule off (`approval: never`)."""
    from coherex.services.agents import apply_spec

    agent = await s.agents.get(execution.agent_id)
    current = await s.agents.get_version(agent.id, agent.current_version)
    data = json.loads(json.dumps(current.spec))
    for tool in data.get("spec", {}).get("tools") or []:
        if (tool.get("name") or tool.get("use", "").replace(".", "_")) == tool_name:
            tool["approval"] = "never"
    saved = await apply_spec(s, execution.team_id, data, message=f"always allow {tool_name} (approval off)")
    return saved.version.version if saved.created_version else None


async def expire_overdue(db: Database) -> list[UUID]:
    """Maintenance: approvals nobody decided in time → rejected (the run goes on and the model is
    told) or the run fails, as `limits.onApprovalTimeout` of the run's version says."""
    async with db.session(Identity.system()) as s:
        overdue = await s.approvals.overdue()
    changed = []
    for execution_id in dict.fromkeys(a.execution_id for a in overdue):
        async with db.session(Identity.system()) as s:
            execution = await s.approvals.lock_execution(execution_id)
            rows = [a for a in await s.approvals.of_execution(execution_id) if a.status == "pending"]
            late = [a for a in rows if a.expires_at.timestamp() <= time.time()]
            if execution is None or not late:
                continue
            if execution.status != "waiting_approval":
                await s.approvals.expire_pending(execution_id)
                continue
            fail = any(a.on_timeout == "fail" for a in late)
            expired_ids = {a.id for a in (rows if fail else late)}
            await s.approvals.expire(list(expired_ids))
            for a in rows:
                if a.id in expired_ids:
                    await s.executions.add_event(
                        execution,
                        "approval_decided",
                        name=a.tool_name,
                        payload={
                            "approval_id": str(a.id),
                            "tool_call_id": a.tool_call_id,
                            "status": "expired",
                        },
                    )
            if fail:
                seconds = int((late[0].expires_at - late[0].created_at).total_seconds())
                error = (
                    f"Nobody approved {late[0].tool_name} within {seconds} s (limits.approvalTimeoutSeconds; "
                    "limits.onApprovalTimeout is fail)."
                )
                final = await s.executions.finish(
                    execution_id,
                    "failed",
                    error=error,
                    tokens_in=execution.tokens_in,
                    tokens_out=execution.tokens_out,
                    cost_usd=execution.cost_usd,
                )
                if final is not None:
                    await s.executions.add_event(execution, "error", payload={"message": error})
                    await s.executions.add_event(
                        execution, "status", name="failed", payload={"status": "failed", "reason": error}
                    )
                    if final.parent_execution_id is not None:  # its caller goes on, told it failed
                        await s.approvals.wake_caller(final)
            else:
                await s.approvals.resume(execution_id)
            await s.audit.record(
                execution.team_id,
                "approval.expire",
                target_type="execution",
                target_id=str(execution_id),
                actor_kind="system",
                details={"approvals": [str(i) for i in expired_ids], "run_failed": fail},
            )
            changed.append(execution_id)
    return changed
