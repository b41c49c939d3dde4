"""A run as the chat shows it: the builder's answer streamed, and a test run as steps under one
"run of …" step — each LLM call, each tool call (✓ or ✗, a failed one in red with its error), the
code a Python call ran — and a last line with the run's outcome.

Tool steps sit directly under the run (next to the LLM calls, in the order they happened), so a
failed call is visible without opening anything else. A sub-agent's steps (events of its own
execution, streamed to the same listeners) sit under the tool step that called it.
"""

from __future__ import annotations

from typing import Any

import chainlit as cl

from coherex.builder import BuilderUI
from coherex.chat.render import rich_elements
from coherex.runtime.citations import format_sources
from coherex.store.models import Agent, Event, Execution

_MAX_OUTPUT = 4000


def _images(images: list[dict[str, Any]]) -> list[cl.Image]:
    """A tool result's images (an MCP server's, a provider's) drawn under its step."""
    import base64

    return [
        cl.Image(
            name=f"image-{i + 1}", content=base64.b64decode(im["data"]), mime=im["mime"], display="inline"
        )
        for i, im in enumerate(images)
        if im.get("data")
    ]


class ChatUI(BuilderUI):
    """Streams the builder's answer into `answer` and shows a run as steps."""

    def __init__(self, answer: cl.Message | None, *, on_run_started: Any = None):
        self.answer = answer
        self.root: cl.Step | None = None
        self.steps: dict[tuple[Any, int], cl.Step] = {}  # (execution id, event seq) → the step showing it
        self.nested: dict[Any, cl.Step] = {}  # a sub-agent's execution id → the tool step that called it
        self.control: cl.Message | None = None
        self._on_run_started = on_run_started  # e.g. keep the conversation's state before a long run

    async def token(self, text: str) -> None:
        if self.answer is not None:
            await self.answer.stream_token(text)

    async def tool_step(self, name: str, arguments: dict[str, Any], result: str) -> None:
        async with cl.Step(name=f"builder · {name}", type="tool", show_input="json") as step:
            step.input = arguments
            step.output = result[:_MAX_OUTPUT]

    async def run_started(self, execution: Execution, agent: Agent) -> None:
        if self._on_run_started is not None:
            await self._on_run_started()
        self.control = cl.Message(
            content=f"Running **{agent.name}** (version {execution.agent_version})…",
            author="Coherex",
            actions=[
                cl.Action(name="stop", payload={"execution": str(execution.id)}, label="Stop", icon="square")
            ],
        )
        await self.control.send()
        self.root = cl.Step(name=f"run of {agent.name}", type="run", default_open=True)
        self.root.input = execution.inputs or ""
        await self.root.send()

    async def run_event(self, event: Event) -> None:
        assert self.root is not None
        p = event.payload
        run = self.nested.get(event.execution_id, self.root)  # the run's step, or the step that called it
        parent = self.steps.get((event.execution_id, event.parent_seq or -1), run)
        child = event.sub_agent_execution_id
        if child is not None:
            self.nested[child] = parent
            parent.name = f"{parent.name} → {p.get('agent', 'agent')}"
            await parent.update()
            return
        if event.type == "llm_call":
            calls = p.get("tool_calls") or []
            step = cl.Step(name=f"LLM · {event.name}", type="llm", parent_id=run.id)
            step.output = p.get("content") or ("calls " + ", ".join(c["name"] for c in calls))
            step.metadata = {
                "tokens_in": event.tokens_in,
                "tokens_out": event.tokens_out,
                "cost_usd": float(event.cost_usd),
                "duration_ms": event.duration_ms,
            }
            step.name += f" · {event.tokens_in + event.tokens_out} tokens · ${float(event.cost_usd):.5f}"
            self.steps[(event.execution_id, event.seq)] = step
            await step.send()
        elif event.type == "tool_call":
            step = cl.Step(name=event.name, type="tool", parent_id=run.id, show_input="json")
            step.input = p.get("arguments") or {}
            self.steps[(event.execution_id, event.seq)] = step
            await step.send()
        elif event.type in ("stdout", "stderr"):
            await parent.stream_token(str(p.get("text", "")).rstrip("\n") + "\n")
        elif event.type == "code":
            step = cl.Step(
                name="code", type="tool", parent_id=parent.id, language="python", show_input="python"
            )
            step.input = p.get("code", "")
            if p.get("error"):
                step.output = f"{p['error'].get('name', 'Error')}: {p['error'].get('value', '')}"
                step.is_error = True
            step.elements = rich_elements(p.get("results") or [])
            await step.send()
        elif event.type == "tool_result":
            ok = bool(p.get("ok"))
            content = str(p.get("content", ""))
            parent.name = f"{'✓' if ok else '✗'} {parent.name}"
            if not ok:  # the error itself, after whatever the call printed
                parent.is_error = True
                parent.name += f" · {_first_line(content.removeprefix('Error: '))}"
                parent.output = ((parent.output or "").rstrip() + "\n\n" + content).strip()[:_MAX_OUTPUT]
            elif not parent.output:
                parent.output = content[:_MAX_OUTPUT]
            parent.elements = [*(parent.elements or []), *_images(p.get("images") or [])]
            await parent.update()
        elif event.type == "error":
            step = cl.Step(name="error", type="tool", parent_id=run.id)
            step.output, step.is_error = str(p.get("message", "")), True
            await step.send()
        elif event.type == "approval_requested":
            from coherex.chat.approvals import approval_card

            await approval_card(event)  # Approve / Reject buttons

    async def run_finished(self, execution: Execution) -> None:
        if self.root is not None:
            self.root.output = execution.shown_status
            await self.root.update()
        if self.control is not None:
            await self.control.remove_actions()
        await cl.Message(content=run_summary(execution), author="Coherex").send()


def run_summary(execution: Execution) -> str:
    """The last message of a run: its outcome, numbers and answer (or error)."""
    seconds = (execution.duration_ms or 0) / 1000
    line = (
        f"**{execution.shown_status}** in {seconds:.1f} s · {execution.tokens_in + execution.tokens_out} "
        f"tokens · ${float(execution.cost_usd):.5f}"
    )
    if execution.tool_errors:
        line += f" · {execution.tool_errors} tool call{'s' if execution.tool_errors != 1 else ''} failed"
    if execution.outcome == "completed_with_errors":
        line += (
            f"\n\n⚠ The answer came after a failed tool call that nothing fixed: "
            f"{_first_line(str(execution.last_tool_error or '').removeprefix('Error: '))}"
        )
    output = execution.output if isinstance(execution.output, dict) else {"text": execution.output}
    result = "\n\n".join(x for x in (output.get("text"), format_sources(output.get("sources") or [])) if x)
    body = f"{line}\n\n{result}" if result else f"{line}\n\n{execution.error or ''}"
    return body.strip()


def _first_line(text: str, limit: int = 120) -> str:
    line = next((x.strip() for x in text.splitlines() if x.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"
