"""One readable terminal line per execution event (used by `coherex run` and `coherex logs`)."""

from __future__ import annotations

import json
import textwrap
from typing import Any
from uuid import UUID

from rich.markup import escape

from coherex.store.models import Event, Execution

_STATUS_STYLE = {
    "completed": "green",
    "completed_with_errors": "yellow",
    "failed": "red",
    "timed_out": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "pending": "dim",
    "waiting_approval": "magenta",
}


def _short(value: Any, limit: int = 100) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ms(ms: int | None) -> str:
    if ms is None:
        return ""
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def format_event(e: Event) -> str:
    p = e.payload
    if e.type == "llm_call":
        calls = p.get("tool_calls") or []
        what = ("→ " + ", ".join(c["name"] for c in calls)) if calls else _short(p.get("content") or "", 80)
        cost = f"${float(e.cost_usd):.5f}" + (" (price unknown)" if p.get("price_unknown") else "")
        return (
            f"[bold]llm[/] {escape(e.name)}  {e.tokens_in}+{e.tokens_out} tok  {cost}  {_ms(e.duration_ms)}  "
            f"{escape(what)}"
        )
    if e.type == "tool_call":
        return f"  [cyan]tool[/] {escape(e.name)}({escape(_short(p.get('arguments', {}), 90))})"
    if e.type in ("stdout", "stderr"):
        style = "" if e.type == "stdout" else "yellow"
        return (
            f"    [dim]│[/] [{style}]{escape(str(p.get('text', '')).rstrip())}[/]"
            if style
            else f"    [dim]│[/] {escape(str(p.get('text', '')).rstrip())}"
        )
    if e.type == "code":
        kinds = sorted({k for r in p.get("results") or [] for k in r if k not in ("is_main_result", "text")})
        extra = f"  rich results: {', '.join(kinds)}" if kinds else ""
        err = f"  [red]{escape(p['error'].get('name', 'error'))}[/]" if p.get("error") else ""
        return f"    [dim]code ran in {_ms(e.duration_ms)}[/]{extra}{err}"
    if e.type == "tool_result":
        mark = "[green]✓[/]" if p.get("ok") else "[red]✗[/]"
        return f"  {mark} {escape(e.name)} {_ms(e.duration_ms)}  {escape(_short(p.get('content', ''), 90))}"
    if e.type == "error":
        return f"[red]error:[/] {escape(str(p.get('message', '')))}"
    if e.type == "status":
        style = _STATUS_STYLE.get(e.name, "")
        return f"[{style}]● {e.name}[/]"
    if e.type == "approval_requested":
        return (
            "  [magenta]waits for approval[/] "
            f"{escape(e.name)}({escape(_short(p.get('arguments', {}), 80))})  "
            f"[dim]coherex approvals approve {escape(str(p.get('approval_id', ''))[:8])}[/]"
        )
    if e.type == "approval_decided":
        return f"  [magenta]approval[/] {escape(e.name)} {escape(str(p.get('status', '')))}" + (
            f": {escape(_short(p['message'], 80))}" if p.get("message") else ""
        )
    if e.type == "log":
        return f"  [dim]log[/] {escape(_short(p, 120))}"
    return f"  {e.type} {escape(_short(p))}"


class Nesting:
    """Lines for the events of a run and of the sub-agents it called: a sub-agent's steps are
    indented under the tool step that called it (its events belong to its own execution)."""

    def __init__(self) -> None:
        self.depth: dict[UUID, int] = {}

    def format(self, e: Event) -> str:
        depth = self.depth.get(e.execution_id, 0)
        child = e.sub_agent_execution_id
        if child is not None:
            p = e.payload
            self.depth[child] = depth + 1
            line = (
                f"    [cyan]↳ agent[/] {escape(str(p.get('agent')))} v{p.get('version')}  "
                f"[dim]execution {escape(str(p['execution_id']))}[/]"
            )
        else:
            line = format_event(e)
        return textwrap.indent(line, "    " * depth) if depth else line


def format_summary(x: Execution) -> str:
    """The last line of `run`/`logs`: the outcome ('completed with errors' when the answer came after
    a failed tool call nothing fixed), numbers, and the failed tool calls."""
    outcome = x.outcome or x.status
    style = _STATUS_STYLE.get(outcome, "")
    line = (
        f"[{style}]{escape(x.shown_status)}[/] in {_ms(x.duration_ms)} · {x.tokens_in + x.tokens_out} "
        f"tokens · ${float(x.cost_usd):.5f} · execution {x.id}"
    )
    if x.tool_errors:
        line += f" · [red]{x.tool_errors} tool call{'s' if x.tool_errors != 1 else ''} failed[/]"
    if outcome == "completed_with_errors":
        line += (
            "\n[yellow]the answer came after a failed tool call:[/] "
            f"{escape(_short(x.last_tool_error or '', 160))}"
        )
    return line
