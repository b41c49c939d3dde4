"""The tools of one run: what the LLM is offered, and where each call executes.

`python` runs in the run's sandbox (opened on first use, always killed at the end);
`knowledge.search` runs in the database under the run's identity; every integration runs on the
host through `coherex.integrations`, which decrypts credentials inside the call. The permission
check — the access a tool needs against the access the spec declared — happens here, at each call.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coherex.errors import BackendError, CoherexError, DatabaseUnavailable, PermissionDenied
from coherex.runtime.citations import Citations
from coherex.runtime.events import EventRecorder
from coherex.spec import AgentSpec, ToolRef
from coherex.spec.catalogue import ToolInfo, get_tool
from coherex.store.db import Database, Identity
from coherex.store.models import Execution

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


class ToolFailed(Exception):
    """A tool call failed; the message goes back to the model (it may try something else)."""


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
    ref: ToolRef
    info: ToolInfo

    @property
    def name(self) -> str:
        return self.ref.tool_name

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

    @classmethod
    def for_spec(cls, ctx: RunContext) -> ToolBox:
        box = cls(ctx)
        for ref in ctx.spec.spec.tools or []:
            info = get_tool(ref.use)
            if info is not None:  # validation refused unknown tools when the version was saved
                box.tools[ref.tool_name] = BoundTool(ref, info)
        return box

    def definitions(self) -> list[dict[str, Any]]:
        return [t.definition() for t in self.tools.values()]

    async def call(self, name: str, args: dict[str, Any], parent_seq: int) -> str:
        """Run one tool call; returns the text the model gets back. Raises ToolFailed."""
        tool = self.tools.get(name)
        if tool is None:
            raise ToolFailed(f"There is no tool {name!r}. Available: {', '.join(self.tools) or 'none'}.")
        merged = {**args, **(tool.ref.with_ or {})}  # the spec's fixed arguments win over the model's
        try:
            _check_access(tool)
            if tool.info.name == "csv.summarize":
                result: Any = await self._csv_summary(merged, parent_seq)
            elif tool.info.integration == "python":
                result = await self._python(merged, parent_seq)
            elif tool.info.name == "knowledge.answer":
                result = await self._knowledge_answer(tool, merged)
            elif tool.info.integration == "knowledge":
                result = await self._knowledge(tool, merged)
            else:
                result = await self._integration(tool, merged)
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
        text = result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)
        if len(text) > _MAX_RESULT_CHARS:
            text = text[:_MAX_RESULT_CHARS] + f"\n… [{len(text) - _MAX_RESULT_CHARS} characters cut]"
        return text

    # ------------------------------------------------------------------ executors
    async def _python(self, args: dict[str, Any], parent_seq: int) -> dict[str, Any]:
        code = args.get("code")
        if not isinstance(code, str) or not code.strip():
            raise ToolFailed("The python tool needs a non-empty `code` string.")
        sandbox = await self.ctx.get_sandbox()
        recorder = self.ctx.recorder
        # Output lines become events while the code still runs, in order, through one writer.
        lines: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue()

        async def write_lines() -> None:
            while (item := await lines.get()) is not None:
                await recorder.record(item[0], payload={"text": item[1]}, parent_seq=parent_seq)

        def stream(kind: str) -> Callable[[Any], None]:
            return lambda line: lines.put_nowait((kind, str(getattr(line, "line", line))))

        writer = asyncio.create_task(write_lines())
        started = time.perf_counter()
        try:
            result = await sandbox.run_code(code, on_stdout=stream("stdout"), on_stderr=stream("stderr"))
        finally:
            lines.put_nowait(None)
            await asyncio.shield(writer)
        await recorder.record(
            "code",
            name="python",
            parent_seq=parent_seq,
            payload={"code": code, "results": result.results, "error": result.error},
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        if result.error:
            # The code raised (a SyntaxError, a missing file, ...): the call failed, whatever it
            # printed before. The model gets the error and the output so it can try again.
            raise ToolFailed(_code_error(result.error, result.stdout, result.stderr))
        out: dict[str, Any] = {"stdout": result.stdout, "stderr": result.stderr}
        if result.results:
            out["results"] = [
                r.get("text") or ", ".join(k for k in r if k != "is_main_result") for r in result.results
            ]
        return out

    async def _csv_summary(self, args: dict[str, Any], parent_seq: int) -> str:
        """The platform's own analysis script (coherex/runtime/csv_summary.py), run in the sandbox."""
        from coherex.runtime.csv_summary import sandbox_code

        uploads = sorted(self.ctx.files)
        name = (
            args.get("file")
            or self.ctx.execution.inputs.get("file")
            or (uploads[0] if len(uploads) == 1 else None)
        )
        if not isinstance(name, str) or not name.strip():
            raise ToolFailed(
                "csv.summarize needs a file: upload a CSV for the run, or give its name as `file`."
            )
        name = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
        if uploads and name not in self.ctx.files:
            raise ToolFailed(f"There is no uploaded file {name!r}; the uploads are: {', '.join(uploads)}.")
        out = await self._python({"code": sandbox_code(name)}, parent_seq)
        if out.get("error"):
            raise ToolFailed(f"The analysis of {name} failed: {str(out['error'])[-500:]}")
        return str(out.get("stdout") or "").strip()

    async def _knowledge(self, tool: BoundTool, args: dict[str, Any]) -> Any:
        from coherex.knowledge import knowledge_search

        query = args.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ToolFailed("knowledge.search needs a `query` string.")
        if not tool.ref.collection:  # refused when a spec is validated now; versions saved before may lack it
            raise ToolFailed(
                "This agent's knowledge.search names no collection to search: add "
                "`collection: <name>` to the tool in the spec and save a new version."
            )
        hits = await knowledge_search(
            self.ctx.db,
            self.ctx.identity,
            self.ctx.execution.team_id,
            tool.ref.collection,
            query,
            int(args.get("top_k") or 5),
        )
        return self.ctx.citations.add(hits)

    async def _knowledge_answer(self, tool: BoundTool, args: dict[str, Any]) -> Any:
        """Retrieval plus an extractive answer (coherex/runtime/extractive.py): no model writes it."""
        from coherex.runtime.extractive import extract_answer

        question = args.get("question") or self.ctx.execution.inputs.get("question")
        if not isinstance(question, str) or not question.strip():
            raise ToolFailed("knowledge.answer needs a question: give the run a `question` input.")
        passages = await self._knowledge(tool, {"query": question, "top_k": 5})
        found = extract_answer(question, passages)
        # plain text: the answer first, as any model (the offline one too) repeats it best
        return found["answer"] + ("\n\nSources: " + "; ".join(found["sources"]) if found["sources"] else "")

    async def _integration(self, tool: BoundTool, args: dict[str, Any]) -> Any:
        from coherex.integrations import invoke_tool

        return await invoke_tool(
            self.ctx.db,
            team_id=self.ctx.execution.team_id,
            agent_id=self.ctx.execution.agent_id,
            tool_name=tool.info.name,
            data_source=tool.ref.dataSource or "",  # validation requires one for these tools
            args=args,
        )


def _platform_failure(exc: Exception) -> bool:
    """The sandbox service or the platform's database failed (an integration's own outage is the tool's)."""
    from coherex.sandbox.errors import (
        SandboxError,
        SandboxNotFound,
    )  # imported when needed: the SDK is slow to load

    return isinstance(exc, (SandboxError, SandboxNotFound, DatabaseUnavailable))


def _code_error(error: Any, stdout: Any, stderr: Any) -> str:
    """One message for code that raised: `Name: value`, the end of its traceback and of its output."""
    error = error if isinstance(error, dict) else {"name": "Error", "value": str(error)}
    lines = [f"{error.get('name') or 'Error'}: {error.get('value') or ''}".rstrip(": ")]
    trace = str(error.get("traceback") or "").strip()
    if trace:
        lines.append("Traceback (last lines):\n" + "\n".join(trace.splitlines()[-8:]))
    for label, text in (("stdout", stdout), ("stderr", stderr)):
        text = "".join(text) if isinstance(text, list) else str(text or "")
        if text.strip():
            lines.append(f"{label} before the error:\n{text.strip()[-1500:]}")
    return "\n".join(lines)


def _check_access(tool: BoundTool) -> None:
    if tool.info.access == "write" and tool.ref.access != "write":
        raise PermissionDenied(
            f"{tool.info.name} changes data in {tool.ref.dataSource or 'its data source'}, but this agent "
            "declared read-only access to it."
        )
