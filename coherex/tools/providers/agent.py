"""`agent`: another agent of the team called as a tool (coherex/runtime/subagents.py runs it as a
child execution). The catalogue entry is generic; a run binds each `use: agent` entry to the
callee pinned with the version (its description and inputs as the parameters)."""

from __future__ import annotations

from typing import Any

from coherex.spec.catalogue import ToolInfo
from coherex.tools.port import Provider, ToolCall, ToolFailed, action
from coherex.tools.schema import params


@action(
    ToolInfo(
        "agent",
        "agent",
        "Run another agent of the team and return its answer. Its parameters are the callee's inputs.",
        parameters=params({}),
    )
)
async def run_agent(call: ToolCall, args: dict[str, Any]) -> dict[str, Any]:
    from coherex.runtime import subagents

    if call.run is None or call.ref is None or call.parent_seq is None:
        raise ToolFailed("A sub-agent runs only inside an agent run.")
    return await subagents.call(call.run, call.ref, args, call.parent_seq)


PROVIDER = Provider("agent", (run_agent,))
