"""One builder conversation, independent of any UI (the chat, tests and `coherex eval` drive it).

    session = BuilderSession(db, identity, team_id, llm=llm)
    turn = await session.send("Post a digest of my unread mail to #ops every morning", ui)
    if turn.draft_changed: show(session.draft.yaml, summarize(session.draft.spec))

A turn is a small agent loop: the builder LLM calls tools (templates, the team's data, drafting,
validation, saving, runs) until it answers in text. Invalid drafts go back to the model with
their problems at most `MAX_REPAIRS` times before the person sees anything; backend failures end
the turn with a plain message and leave the conversation usable. On the offline model a turn is
the platform's guided flow instead (`coherex.builder.offline`): no structure is left to a 135M model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from coherex import resources
from coherex.builder.draft import Connection, Draft, TeamRefs
from coherex.builder.install import InstallPreview, install_reference
from coherex.builder.install import preview as install_preview
from coherex.builder.offline import OfflineGuide
from coherex.builder.summary import summarize
from coherex.builder.tools import TOOLS, definitions, match_templates
from coherex.errors import BackendError, CoherexError, UserError
from coherex.llm import LLMClient
from coherex.runtime import Runtime
from coherex.services.agents import (
    agent_by_name,
    current_version,
    get_agent,
    save_as_new_or_version,
    team_refs,
)
from coherex.services.users import timezone_of
from coherex.settings import Settings, get_settings
from coherex.spec import Problem, to_data
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Event, Execution

log = logging.getLogger(__name__)

PROMPTS = resources.path("prompts")
#: corrected drafts the model may send after an invalid one, within one turn
MAX_REPAIRS = 3
#: LLM calls in one turn (tool rounds plus the answer)
MAX_STEPS = 12
BUILDER_TEMPERATURE = 0.2
#: uploads that go into the sandbox (not the knowledge base) when the draft runs Python
DATA_SUFFIXES = frozenset(
    {
        ".csv",
        ".tsv",
        ".json",
        ".jsonl",
        ".xlsx",
        ".xls",
        ".parquet",
        ".feather",
        ".sqlite",
        ".db",
        ".xml",
        ".zip",
    }
)
#: the most a conversation keeps of uploaded files for its test runs
MAX_FILES_BYTES = 50 * 1024 * 1024
#: how much of the conversation is kept in a chat thread's metadata (to resume it)
MAX_STATE_CHARS = 400_000


class BuilderUI:
    """What a front end sees during a turn. Every method is optional (the base does nothing)."""

    async def token(self, text: str) -> None:
        """A piece of the assistant's answer, as it streams."""

    async def tool_step(self, name: str, arguments: dict[str, Any], result: str) -> None:
        """A builder tool ran (shown as a step)."""

    async def run_started(self, execution: Execution, agent: Agent) -> None:
        """A run was created; from here it can be stopped."""

    async def run_event(self, event: Event) -> None:
        """One stored step of a running agent, as it happens."""

    async def run_finished(self, execution: Execution) -> None:
        """The run ended; `execution` has its status, output, duration, tokens and cost."""


@dataclass
class TurnResult:
    text: str = ""
    draft_changed: bool = False
    #: a backend (LLM, database, sandbox) failed: what to tell the person
    error: str | None = None
    #: problems left when the repairs ran out (the draft shown is the last valid one)
    problems: list[Problem] = field(default_factory=list)
    execution: Execution | None = None
    #: the person asked to install an agent from a registry: what it holds (saved only on confirm)
    install: InstallPreview | None = None
    llm_calls: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    duration_ms: float = 0.0


class _Abort(Exception):
    """End the turn now with this message (a backend failed inside a tool)."""


class BuilderSession:
    def __init__(
        self,
        db: Database,
        identity: Identity,
        team_id: UUID,
        *,
        llm: LLMClient | None = None,
        runtime: Runtime | None = None,
        settings: Settings | None = None,
        team_name: str = "",
        small_model: bool | None = None,
        headless: bool = False,
    ):
        """`small_model` (default: whether the offline model answers): turns go through the guided flow of
        `coherex.builder.offline` (templates and tools chosen by meaning, slots filled by the platform)
        instead of the model's tool calls."""
        self.db = db
        self.identity = identity
        self.team_id = team_id
        self.team_name = team_name
        self.settings = settings or get_settings()
        self._llm = llm
        if small_model is None:
            from coherex.llm.local_model import LocalModelClient

            small_model = isinstance(llm, LocalModelClient) if llm is not None else self.settings.llm_offline
        self.small_model = small_model
        #: no person at the other end (the API): the model may draft but not save or run anything
        self.headless = headless
        self.runtime = runtime or Runtime(db, llm=llm, settings=self.settings)
        self.messages: list[dict[str, Any]] = []
        self.draft: Draft | None = None
        #: the saved agent this conversation works on (created by Save, or opened)
        self.agent: Agent | None = None
        #: the draft differs from the agent's saved version
        self.unsaved = False
        self.running: Execution | None = None
        #: files uploaded for the sandbox: written into the working directory of every test run
        self.files: dict[str, bytes] = {}
        self._work: dict[str, Any] | None = None
        self._failed_drafts = 0
        self._last_problems: list[Problem] = []
        self._ui = BuilderUI()
        self._turn = TurnResult()
        #: the guided flow used instead of the model's tool calls when the model is the offline one
        self._guide = OfflineGuide(self)
        #: the person's time zone (`person_timezone()` reads it afresh each turn) and whether it is
        #: theirs (stored for them) rather than the install's default
        self.timezone, self.timezone_known = self.settings.chat_timezone, False

    @property
    def llm(self) -> LLMClient:
        if self._llm is None:
            from coherex.llm import get_llm_client

            self._llm = get_llm_client(self.settings)
        return self._llm

    # ------------------------------------------------------------------ the conversation
    async def use_team_model(self) -> None:
        """Talk through the team's connected model, if it has one and no client was given: a team that
        connected a capable model gets the model-driven builder instead of the offline guide."""
        if self._llm is not None:
            return
        from coherex.llm.team import team_model

        team = await team_model(self.db, self.team_id, self.settings)
        if team is not None:
            self._llm, self.small_model = team.client, False

    async def send(self, text: str, ui: BuilderUI | None = None) -> TurnResult:
        """One turn: the person's message in, the builder's answer (and maybe a new draft) out."""
        await self.use_team_model()
        started = time.perf_counter()
        self._ui, self._turn = ui or BuilderUI(), TurnResult()
        self._work = self.draft.data if self.draft else None
        self._failed_drafts, self._last_problems = 0, []
        try:
            await self.person_timezone()
            await self._recheck_connections()
            if not self.messages:
                self.messages.append({"role": "system", "content": await self._system_prompt(text)})
            self.messages.append({"role": "user", "content": text})
            if not self.headless and (ref := install_reference(text)) is not None:
                # "install this agent from REF": the platform shows it; only a confirm saves it
                self._turn.install = await install_preview(self, ref)
                self._say(self._turn.install.text())
            elif (
                self.small_model
            ):  # no capable model: the platform's guided flow, no structure from the model
                await self._guide.turn(text)
            else:
                await self._loop()
        except _Abort as exc:
            self._turn.error = str(exc)
        except CoherexError as exc:
            self._turn.error = plain_error(exc)
        self._turn.duration_ms = (time.perf_counter() - started) * 1000
        return self._turn

    async def person_timezone(self) -> str:
        """The time zone of this person's schedules (they may have changed it in the chat settings)."""
        self.timezone, self.timezone_known = await timezone_of(self.db, self.identity.user_id, self.settings)
        return self.timezone

    async def _loop(self) -> None:
        turn = self._turn
        for _ in range(MAX_STEPS):
            stream = _Stream(self._ui)
            try:
                tools = definitions(headless=self.headless)
                result = await self.llm.chat(
                    self.messages,
                    tools,
                    # the team's model names its own default; else the install's
                    model=getattr(self.llm, "default_model", None) or self.settings.default_model,
                    temperature=BUILDER_TEMPERATURE,
                    stream_handler=stream.push,
                )
            finally:
                await stream.drain()
            turn.llm_calls += 1
            turn.tokens_in += result.usage.prompt_tokens
            turn.tokens_out += result.usage.completion_tokens
            turn.cost_usd += result.cost_usd
            self.messages.append(result.to_message())
            if result.content:
                turn.text = result.content
            if not result.tool_calls:
                return
            for call in result.tool_calls:
                try:
                    output = await self._call(call.name, call.arguments)
                except _Abort as exc:
                    self.messages.append(
                        {"role": "tool", "tool_call_id": call.id, "content": f"Error: {exc}"}
                    )
                    raise
                self.messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
                await self._ui.tool_step(call.name, call.arguments, output)
            if self._failed_drafts > MAX_REPAIRS:
                turn.problems = self._last_problems
                self._say(
                    "I could not produce a valid agent spec from this yet. What is still wrong:\n"
                    + "\n".join(f"- {p}" for p in turn.problems)
                    + "\nCould you tell me more about what the agent should use or do?"
                )
                return
        turn.text = turn.text or "I stopped here to keep this conversation short; tell me how to continue."

    async def _call(self, name: str, args: dict[str, Any]) -> str:
        tool = TOOLS.get(name)
        if self.headless and tool is not None and not tool.headless:
            return (
                f"Error: {name} is not available here; the caller decides whether to save. Finish the draft."
            )
        if tool is None:
            return f"Error: there is no tool {name!r}."
        try:
            result = await tool.handler(self, **args)
        except TypeError as exc:
            return f"Error: wrong arguments for {name}: {exc}"
        except BackendError as exc:
            raise _Abort(plain_error(exc)) from exc
        except CoherexError as exc:
            return f"Error: {exc}"
        return result if isinstance(result, str) else json.dumps(result, default=str, ensure_ascii=False)

    def _say(self, text: str) -> None:
        """End the turn with words of the builder itself (not the model's)."""
        self.messages.append({"role": "assistant", "content": text})
        self._turn.text = text

    async def _system_prompt(self, first_message: str) -> str:
        refs = await self._refs()
        sources = (
            ", ".join(f"{n} ({t})" for n, t in sorted(refs.data_sources.items())) or "none connected yet"
        )
        matches = (
            "; ".join(f"{t.name} — {t.description}" for t, _ in match_templates(first_message)) or "none"
        )
        return (
            (PROMPTS / "builder_system.md")
            .read_text()
            .format(
                team=self.team_name or str(self.team_id),
                data_sources=sources,
                collections=", ".join(sorted(refs.collections)) or "none yet",
                templates=matches,
                today=date.today().isoformat(),
                timezone=await self.person_timezone(),
                spec_reference=(PROMPTS / "spec_reference.md").read_text(),
            )
        )

    async def _refs(self) -> TeamRefs:
        return TeamRefs(*await team_refs(self.db, self.identity, self.team_id))

    # ------------------------------------------------------------------ drafting
    async def set_draft(self, data: dict[str, Any]) -> Draft:
        """Validate `data`; a valid one becomes the shown draft. Used by the tools and by Edit."""
        self._work = data
        draft = Draft.check(data, await self._refs())
        if draft.valid:
            self.draft, self.unsaved = draft, True
            self._turn.draft_changed = True
        return draft

    async def _recheck_connections(self) -> None:
        """A draft waiting for a data source is checked again at each turn: the person connected it
        (in the connect form, another tab) and said so in whatever words — the card then shows it ready."""
        if self.draft is None or not self.draft.connections:
            return
        draft = Draft.check(self.draft.data, await self._refs())
        if draft.valid and draft.connections != self.draft.connections:
            self.draft = draft
            self._turn.draft_changed = True

    async def _after_draft(self, draft: Draft) -> dict[str, Any]:
        if draft.valid:
            self._failed_drafts = 0
            answer: dict[str, Any] = {"valid": True, "summary": summarize(draft.spec)}
            if draft.connections:
                answer["to_connect"] = [c.instructions() for c in draft.connections]
            if draft.placeholders:  # facts only the person knows: asked, never invented
                answer["ask_the_person"] = [f"{p.path}: {p.message}" for p in draft.placeholders]
            if warnings := [p for p in draft.report.warnings if p not in draft.placeholders]:
                answer["warnings"] = [str(p) for p in warnings]
            return answer
        self._failed_drafts += 1
        self._last_problems = draft.problems
        return {
            "valid": False,
            "problems": (PROMPTS / "builder_repair.md")
            .read_text()
            .format(
                attempt=self._failed_drafts,
                max_attempts=MAX_REPAIRS + 1,
                problems="\n".join(f"- {p}" for p in draft.problems),
            ),
        }

    async def schedule(self, cron: str, timezone: str | None = None) -> dict[str, Any]:
        """Replace the draft's schedule (in the person's time zone unless another is given); a saved
        agent gets a new version at once."""
        if self._work is None:
            raise UserError("There is no agent to schedule yet.")
        timezone = timezone or await self.person_timezone()
        spec = dict(self._work.get("spec") or {})
        others = [t for t in spec.get("triggers") or [] if not (isinstance(t, dict) and "schedule" in t)]
        spec["triggers"] = others + [{"schedule": {"cron": cron, "timezone": timezone}}]
        draft = await self.set_draft({**self._work, "spec": spec})
        answer = await self._after_draft(draft)
        if draft.ready and self.agent is not None:
            answer["saved_version"] = (await self.save(f"schedule {cron} {timezone}")).version.version
        return answer

    # ------------------------------------------------------------------ the team's data
    # ------------------------------------------------------------------ saving and running
    async def save(self, message: str = "saved from the chat"):
        """Save the draft (a new agent, or a new version of this conversation's agent)."""
        if self.draft is None:
            raise UserError("There is nothing to save yet: describe the agent first.")
        if not self.draft.ready:
            raise UserError("Not saved yet. First:\n" + self.draft.not_ready())
        data = to_data(self.draft.spec)
        new = self.agent is None or self.agent.name != self.draft.name
        saved = await save_as_new_or_version(
            self.db, self.identity, self.team_id, data, new=new, message=message
        )
        self.agent, self.unsaved = saved.agent, False
        self.draft = Draft.check(data, await self._refs())
        return saved

    async def test_run(self, inputs: dict[str, Any] | None = None, ui: BuilderUI | None = None) -> Execution:
        """Save if needed, then run the draft now, streaming its steps."""
        if self.draft is None:
            raise UserError("There is nothing to run yet: describe the agent first.")
        if self.unsaved or self.agent is None:
            await self.save("test run from the chat")
        assert self.agent is not None
        return await self.run_agent(self.agent, inputs, ui, files=self.files)

    async def run_agent(
        self,
        agent: Agent,
        inputs: dict[str, Any] | None = None,
        ui: BuilderUI | None = None,
        files: dict[str, bytes] | None = None,
    ) -> Execution:
        ui = ui or self._ui
        execution = await self.runtime.create(
            self.identity, self.team_id, agent, trigger="chat", inputs=inputs or {}
        )
        self.running = execution
        await ui.run_started(execution, agent)
        try:
            final = await self.runtime.run(execution.id, listeners=[ui.run_event], files=files or None)
        finally:
            self.running = None
        await ui.run_finished(final)
        self._turn.execution = final
        return final

    # ------------------------------------------------------------------ uploads
    def takes_file(self, name: str) -> bool:
        """Whether an upload belongs in the sandbox: a data file while the draft runs Python code."""
        if self.draft is None or not self.draft.valid:
            return False
        uses_python = any(t.use in ("python", "csv.summarize") for t in self.draft.spec.spec.tools or [])
        return uses_python and Path(name).suffix.lower() in DATA_SUFFIXES

    async def add_file(self, name: str, data: bytes) -> str:
        """Keep `data` for the test runs (written into the sandbox's working directory as `name`).
        When the spec has a `file` input, its default becomes this file. Returns the name used."""
        name = Path(name.replace("\\", "/")).name
        if not name or name in (".", ".."):
            raise UserError("That upload has no usable file name.")
        if sum(len(v) for k, v in self.files.items() if k != name) + len(data) > MAX_FILES_BYTES:
            raise UserError(
                f"Uploads for test runs are limited to {MAX_FILES_BYTES // 2**20} MB in all; "
                "remove some or use a data source instead."
            )
        self.files[name] = data
        work = self._work or (self.draft.data if self.draft else None)
        inputs = ((work or {}).get("spec") or {}).get("inputs") or {}
        if isinstance(inputs.get("file"), dict) and inputs["file"].get("default") != name:
            spec = {**work["spec"], "inputs": {**inputs, "file": {**inputs["file"], "default": name}}}
            await self.set_draft({**work, "spec": spec})
        return name

    def discard(self) -> None:
        """Drop the draft (and let go of the agent it edits; a saved agent stays saved): the next
        message starts a new agent, and a resumed thread brings nothing back."""
        self.draft, self._work, self.agent, self.unsaved = None, None, None, False

    # ------------------------------------------------------------------ keeping a conversation
    def state(self) -> dict[str, Any]:
        """What a chat thread keeps to resume this conversation later (JSON): the draft, the saved
        agent, the conversation with the builder (the oldest turns dropped when it is long)."""
        messages = self.messages[1:]  # the system prompt is rebuilt on resume
        while messages and len(json.dumps(messages, default=str)) > MAX_STATE_CHARS:
            nxt = next((i for i, m in enumerate(messages) if i > 0 and m.get("role") == "user"), None)
            messages = messages[nxt:] if nxt else []
        return {
            "team_id": str(self.team_id),
            "draft": self._work if self.draft is None else self.draft.data,
            "agent_id": str(self.agent.id) if self.agent else None,
            "unsaved": self.unsaved,
            "messages": messages,
            "files": sorted(self.files),
        }

    async def restore(self, state: dict[str, Any]) -> None:
        """Continue a conversation from `state()` (the draft is checked again against the team's data)."""
        if state.get("agent_id"):
            agent = await get_agent(self.db, self.identity, UUID(state["agent_id"]))
            self.agent = agent if agent is not None and agent.team_id == self.team_id else None
        if isinstance(state.get("draft"), dict) and state["draft"]:
            self._work = state["draft"]
            draft = Draft.check(state["draft"], await self._refs())
            if draft.valid:
                self.draft = draft
        self.unsaved = bool(state.get("unsaved", self.agent is None)) or self.agent is None
        history = [
            m for m in state.get("messages") or [] if isinstance(m, dict) and m.get("role") != "system"
        ]
        if history:
            first_user = next((m.get("content") for m in history if m.get("role") == "user"), "") or ""
            self.messages = [
                {"role": "system", "content": await self._system_prompt(str(first_user))},
                *history,
            ]

    async def stop(self) -> bool:
        """Stop the run in progress, if any (it ends within a second)."""
        if self.running is None:
            return False
        await self.runtime.stop(self.identity, self.running.id)
        return True

    # ------------------------------------------------------------------ existing agents
    async def open_agent(self, name: str) -> Agent:
        agent = await agent_by_name(self.db, self.identity, self.team_id, name)
        version = await current_version(self.db, self.identity, agent)
        self.agent = agent
        await self.set_draft(version.spec)
        self.unsaved = False
        return agent


# ---------------------------------------------------------------------- helpers
class _Stream:
    """Hands streamed text to the UI in order (the LLM client calls a plain function)."""

    def __init__(self, ui: BuilderUI):
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump(ui))

    def push(self, delta: str) -> None:
        self.queue.put_nowait(delta)

    async def _pump(self, ui: BuilderUI) -> None:
        while (delta := await self.queue.get()) is not None:
            try:
                await ui.token(delta)
            except Exception:  # a broken viewer must not break the conversation
                log.exception("streaming to the UI failed")

    async def drain(self) -> None:
        self.queue.put_nowait(None)
        await self.task


def plain_error(exc: CoherexError) -> str:
    from coherex.llm.errors import LLMError

    if isinstance(exc, LLMError):
        return (
            f"The language model is not answering right now ({exc.message}). Your draft is kept; try again."
        )
    if isinstance(exc, BackendError):
        return f"A service Coherex needs is not available ({exc.message}). Your draft is kept; try again."
    return str(exc)


__all__ = ["BuilderSession", "BuilderUI", "Connection", "TurnResult", "plain_error"]
