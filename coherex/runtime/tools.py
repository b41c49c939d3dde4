"""The tools of one run: what the LLM is offered, and where each call executes.

Every call goes through the tool's provider (coherex/tools/): the sandbox tools run in the run's
sandbox (opened on first use, always killed at the end), knowledge tools in the database under
the run's identity, and every tool that needs a data source goes through
`coherex.integrations.service.invoke` (grant check, rate limit, audit, credentials decrypted inside
the call). The permission check — the access a tool needs against the access the spec declared —
happens here too, at each call.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from coherex.errors import BackendError, CoherexError, DatabaseUnavailable, PermissionDenied
from coherex.runtime.citations import Citations
from coherex.runtime.events import EventRecorder
from coherex.spec import AgentSpec, ToolRef
from coherex.spec.catalogue import ToolInfo, get_tool
from coherex.store.db import Database, Identity
from coherex.store.models import Execution
from coherex.tools.port import ToolCall, ToolFailed, ToolProvider, ToolResult

__all__ = [
    "FILE_INPUT",
    "BoundTool",
    "PlatformFailed",
    "RunContext",
    "ToolBox",
    "ToolFailed",
    "with_file_input",
]

_MAX_RESULT_CHARS = 12_000  # what goes back to the model from one tool call
SANDBOX_HOME = "/home/user"  # the working directory of code in the sandbox (E2B's too)


#: the input through which a spec names the file a run reads (the data-analysis template's `file`)
FILE_INPUT = "file"


def with_file_input(spec: AgentSpec, inputs: dict[str, Any], files: list[str]) -> dict[str, Any]:
    """`inputs` with the spec's `file` input set to the (first) file given with the run, unless the
    caller set it: a file passed to a run (`coherex run --file`) is the file it reads, not the
    template's default."""
    declared = spec.spec.inputs or {}
    if (
        files
        and FILE_INPUT in declared
        and FILE_INPUT not in inputs
        and declared[FILE_INPUT].type == "string"
    ):
        return {**inputs, FILE_INPUT: files[0]}
    return inputs


class PlatformFailed(BackendError):
    """A tool could not run because the platform's sandbox or database failed: the run is retried."""


@dataclass
class RunContext:
    db: Database
    execution: Execution
    identity: Identity  # the run's data identity: its owner, narrowed to the team
    recorder: EventRecorder
    spec: AgentSpec
    sandbox: Any = None  # opened on the first python call
    sandbox_opener: Any = None  # async () -> sandbox
    files: dict[str, bytes] = field(default_factory=dict)  # put in the sandbox's working directory
    citations: Citations = field(default_factory=Citations)  # passages read, numbered for [n] citations
    final_attempt: bool = True  # no retry left: a platform failure is told to the model instead of retried
    approvals: Any = None  # runtime.approvals.Gate: approval rules, decisions of a resumed step
    runtime: Any = None  # the Runtime running this run (sub-agents run through it)
    budget: Any = None  # runtime.subagents.Budget: the cost and time shared with sub-agents
    sub_agents: dict[str, Any] = field(default_factory=dict)  # tool name → runtime.subagents.SubAgent

    async def run_file(self, name: str) -> bytes:
        """A file of this run by name: one the sandbox's code wrote in its working directory, else an
        upload of the run. ToolFailed, listing what there is, when it has none of that name."""
        from coherex.sandbox.errors import SandboxInvalidInput

        clean = name.strip().removeprefix(SANDBOX_HOME + "/").removeprefix("./")
        if not clean or clean.startswith("/") or "\\" in clean or ".." in clean.split("/"):
            raise ToolFailed(
                f"{name!r} is not a file name of this run: give the name of an upload or of a file the "
                f"code wrote in its working directory ({SANDBOX_HOME}), e.g. chart.png."
            )
        found: list[str] = []
        if self.sandbox is not None:
            try:
                return bytes(await self.sandbox.files.read(f"{SANDBOX_HOME}/{clean}", text=False))
            except SandboxInvalidInput:  # not there (or a directory)
                found = [e.name for e in await self.sandbox.files.list(SANDBOX_HOME) if e.type == "file"]
        if clean in self.files:
            return self.files[clean]
        known = sorted(set(found) | set(self.files))
        raise ToolFailed(
            f"There is no file {clean!r} in this run. "
            + (f"Its files: {', '.join(known[:30])}." if known else "It has no files yet.")
            + " Send an upload of the run by its name, or first save the file in the working directory "
            "with the python tool."
        )

    async def get_sandbox(self) -> Any:
        if self.sandbox is None:
            self.sandbox = await self.sandbox_opener()
            for name, data in self.files.items():
                await self.sandbox.files.write(f"{SANDBOX_HOME}/{name}", data)
            async with self.db.session(Identity.system()) as s:
                await s.executions.set_sandbox(self.execution.id, self.sandbox.id)
        return self.sandbox


@dataclass
class BoundTool:
    """One tool the model may call: the spec's entry, the tool and the provider that runs it."""

    name: str  # the function name the LLM sees
    ref: ToolRef
    info: ToolInfo
    provider: ToolProvider

    def definition(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.info.description,
                "parameters": self.info.llm_parameters(self.ref.with_),
            },
        }


@dataclass
class ToolBox:
    ctx: RunContext
    tools: dict[str, BoundTool] = field(default_factory=dict)
    #: images a tool step's result carried (tool step seq → stored form), for its tool_result event
    images: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    async def for_spec(cls, ctx: RunContext) -> ToolBox:
        from coherex.tools.registry import provider_for_tool, provider_named

        box = cls(ctx)
        for ref in ctx.spec.spec.tools or []:
            if ref.use == "agent":  # a sub-agent: its info (the callee's inputs) was pinned with the version
                sub = ctx.sub_agents.get(ref.tool_name)
                agent_provider = provider_for_tool("agent")
                if sub is not None and agent_provider is not None:
                    box.tools[ref.tool_name] = BoundTool(ref.tool_name, ref, sub.info, agent_provider)
                continue
            info = get_tool(ref.use)
            provider = provider_for_tool(ref.use)
            if info is not None and provider is not None:  # validation refused unknown tools when saved
                box.tools[ref.tool_name] = BoundTool(ref.tool_name, ref, info, provider)
                continue
            provider = provider_named(ref.use)
            if provider is not None and provider.discover is not None and ref.dataSource:
                for bound in await _discovered(ctx, ref, provider):
                    box.tools[bound.name] = bound
        return box

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self.tools.values()]

    async def call(self, name: str, args: dict[str, Any], parent_seq: int) -> str:
        """Run one tool call; returns the text the model gets back. Raises ToolFailed."""
        tool = self.tools.get(name)
        if tool is None:
            raise ToolFailed(f"There is no tool {name!r}. Available: {', '.join(self.tools) or 'none'}.")
        merged = {**args, **(tool.ref.with_ or {})}  # the spec's fixed arguments win over the model's
        execution = self.ctx.execution
        call = ToolCall(
            self.ctx.db,
            execution.team_id,
            execution.agent_id,
            execution.id,
            tool.info,
            tool.ref,
            self.ctx,
            parent_seq=parent_seq,
        )
        try:
            _check_access(tool)
            if tool.info.needs_data_source:
                from coherex.integrations.service import invoke

                result: Any = await invoke(call, tool.provider, tool.ref.dataSource or "", merged)
            else:
                result = await tool.provider.call(call, merged)
        except ToolFailed:
            raise
        except CoherexError as exc:
            if _platform_failure(exc):
                # the platform failed, not the agent: the run is retried; only its last attempt tells
                # the model
                if not self.ctx.final_attempt:
                    raise PlatformFailed(f"{tool.info.name}: {exc}") from exc
                raise ToolFailed(
                    f"The platform failed to run {tool.info.name} ({exc}); no retry is left."
                ) from exc
            raise ToolFailed(str(exc)) from exc
        text = _text(result)
        if isinstance(result, ToolResult) and result.images:  # shown with the step (the chat draws them)
            self.images[parent_seq] = _shown_images(result.images)
        if len(text) > _MAX_RESULT_CHARS:
            text = text[:_MAX_RESULT_CHARS] + f"\n… [{len(text) - _MAX_RESULT_CHARS} characters cut]"
        return text


async def _discovered(ctx: RunContext, ref: ToolRef, provider: ToolProvider) -> list[BoundTool]:
    """One BoundTool per tool of the source's last check that the entry allows, named
    `<source>_<tool>` (or `<name>_<tool>` with the entry's `name:`). Tools that change data are
    offered only when the entry declares write access (and checked at each call like any other)."""
    from coherex.integrations.service import discovered_tools

    offered = await discovered_tools(ctx.db, ctx.execution.team_id, ref.dataSource or "") or []
    allowed = set(ref.tools) if ref.tools is not None else None
    prefix = ref.name or ref.dataSource or ref.use
    out = []
    for info in offered:
        if (allowed is not None and info.name not in allowed) or (
            info.access == "write" and ref.access != "write"
        ):
            continue
        out.append(BoundTool(llm_name(prefix, info.name), ref, info, provider))
    return out


def llm_name(prefix: str, tool: str) -> str:
    """`docs` + `search` → `docs_search`, within the function-name pattern the LLM APIs accept
    (letters, digits, _ and -, at most 64)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", f"{prefix}_{tool}")
    return name if len(name) <= 64 else name[:55] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]


def _text(result: Any) -> str:
    """What the model reads of a result: text as is, anything else as JSON."""
    if isinstance(result, ToolResult):
        parts = [result.text or ("" if result.data is None else _json(result.data))]
        parts += [f"[image: {mime}, {len(data)} bytes]" for mime, data in result.images]
        parts += [
            f"[resource {r.get('uri', '')}]\n{r['text']}"
            if r.get("text")
            else f"[resource {r.get('uri', '')}]"
            for r in result.resources
        ]
        text = "\n".join(p for p in parts if p)
        if result.is_error:
            raise ToolFailed(text or "The tool reported an error.")
        return text
    return result if isinstance(result, str) else _json(result)


_MAX_IMAGE_BYTES = 1_000_000  # an image larger than this is named in the step, not stored
_MAX_IMAGES = 4


def _shown_images(images: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """A result's images as a step stores them: base64 with their type, a note for one too large."""
    import base64

    out: list[dict[str, Any]] = []
    for mime, data in images[:_MAX_IMAGES]:
        if len(data) > _MAX_IMAGE_BYTES or not mime.startswith("image/"):
            out.append({"mime": mime, "bytes": len(data), "note": "not stored (too large or not an image)"})
        else:
            out.append({"mime": mime, "bytes": len(data), "data": base64.b64encode(data).decode()})
    return out


def _json(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _platform_failure(exc: Exception) -> bool:
    """The sandbox service or the platform's database failed (an integration's own outage is the tool's)."""
    from coherex.sandbox.errors import (
        SandboxError,
        SandboxNotFound,
    )  # imported when needed: the SDK is slow to load
    from coherex.tools.providers.mcp.errors import McpServerDown  # a data source's server that died

    return isinstance(exc, (SandboxError, SandboxNotFound, DatabaseUnavailable, McpServerDown))


def _check_access(tool: BoundTool) -> None:
    if tool.info.access == "write" and tool.ref.access != "write":
        raise PermissionDenied(
            f"{tool.info.name} changes data in {tool.ref.dataSource or 'its data source'}, but this agent "
            "declared read-only access to it."
        )
