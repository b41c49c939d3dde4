"""Approval cards in the chat: a run's call that waits for approval is shown with Approve and
Reject buttons under its step; a decision resumes the run right here (a worker may take it first:
exactly one of them runs it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import chainlit as cl

from coherex.errors import CoherexError
from coherex.services.approvals import waiting_run
from coherex.store.models import Event

log = logging.getLogger("coherex.chat")

_make_ui: Callable[[Any], Any] | None = None  # the chat's run view (ChatUI), given by chat_app.install


def install(make_ui: Callable[[Any], Any]) -> None:
    global _make_ui
    _make_ui = make_ui


async def approval_card(event: Event) -> None:
    p = event.payload
    args = json.dumps(p.get("arguments") or {}, indent=2, ensure_ascii=False)
    why = f"\n\nThe model said: {p['reason']}" if p.get("reason") else ""
    payload = {"approval": p.get("approval_id"), "execution": str(event.execution_id)}
    await cl.Message(
        content=f"**{event.name}** waits for your approval ({p.get('tool', '')}):\n```json\n{args}\n```{why}",
        author="Coherex",
        actions=[
            cl.Action(name="approve_call", payload=payload, label="Approve", icon="check"),
            cl.Action(name="reject_call", payload=payload, label="Reject", icon="x"),
        ],
    ).send()


@cl.action_callback("approve_call")
async def on_approve(action: cl.Action) -> None:
    await _decide(action, "approve")


@cl.action_callback("reject_call")
async def on_reject(action: cl.Action) -> None:
    reply = await cl.AskUserMessage(content="Why not? The model reads this.", timeout=600).send()
    await _decide(action, "reject", reply["output"] if reply else None)


async def _decide(action: cl.Action, decision: str, message: str | None = None) -> None:
    from coherex.runtime.approvals import decide

    builder = cl.user_session.get("builder")
    if builder is None:
        return
    try:
        done = await decide(
            builder.db, builder.identity, UUID(action.payload["approval"]), decision, message=message
        )
        await action.remove()
        await cl.Message(
            content=f"{done.approval.tool_name}: {done.approval.status}.", author="Coherex"
        ).send()
        if done.resumed:  # the run that goes on: for a sub-agent's call, the root run that called it
            await _resume(builder, done.queued or UUID(action.payload["execution"]))
    except CoherexError as exc:  # a viewer, a call someone else decided meanwhile, a backend away
        await cl.Message(content=str(exc), author="Coherex").send()


async def _resume(builder: Any, execution_id: UUID) -> None:
    execution, agent = await waiting_run(builder.db, execution_id)
    ui = _make_ui(None)
    await ui.run_started(execution, agent)
    final = await builder.runtime.run(execution_id, listeners=[ui.run_event])
    if final.finished or final.status == "waiting_approval":
        await ui.run_finished(final)
    else:
        await cl.Message(
            content="A worker goes on with this run; its steps are in `coherex logs -f "
            f"{str(execution_id)[:12]}`.",
            author="Coherex",
        ).send()
