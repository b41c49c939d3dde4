"""The Coherex chat (Chainlit): describe an agent, see its spec and summary, save, test-run and
schedule it, and talk to existing agents. The builder itself lives in `coherex.builder`; this file
only connects it to Chainlit: login, the draft card with its buttons, live run steps, uploads.

Served mounted at /chat by `coherex web`, or alone with `chainlit run chat_app.py`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import chainlit as cl
from chainlit.input_widget import Select

from coherex.builder import BuilderSession, BuilderUI, plain_error, summarize
from coherex.chat import CoherexDataLayer
from coherex.chat.approvals import approval_card, install as install_approvals
from coherex.chat.data_layer import TEAM_KEY
from coherex.chat.render import rich_elements
from coherex.chat.session import chat_auth_secret
from coherex.errors import BackendError, CoherexError
from coherex.runtime.citations import format_sources
from coherex.settings import get_settings
from coherex.spec import parse
from coherex.spec.templates import list_templates
from coherex.store.db import Database, Identity
from coherex.store.models import Agent, Event, Execution

log = logging.getLogger("coherex.chat")

SCHEDULE_PRESETS = {"Weekdays at 08:00": "0 8 * * 1-5", "Every day at 09:00": "0 9 * * *",
                    "Mondays at 09:00": "0 9 * * 1", "Every hour": "0 * * * *"}
#: thread metadata key holding the builder's state (`BuilderSession.state()`)
STATE_KEY = "builder_state"


os.environ.setdefault("CHAINLIT_AUTH_SECRET", chat_auth_secret())

# ---------------------------------------------------------------------- the database, opened once
_db: Database | None = None


async def database() -> Database:
    global _db
    if _db is None:
        _db = await Database.from_settings().open()
    return _db


@cl.data_layer
def data_layer() -> CoherexDataLayer:
    """Threads are kept in Coherex's own tables (and `DATABASE_URL` is not taken for Chainlit's layer)."""
    return CoherexDataLayer(database)


# ---------------------------------------------------------------------- errors never show a trace
def safe(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run a chat handler; any failure becomes one plain message and the conversation goes on."""

    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(*args, **kwargs)
        except CoherexError as exc:
            await cl.Message(content=plain_error(exc), author="Coherex").send()
        except Exception as exc:
            log.exception("chat handler %s failed", handler.__name__)
            await cl.Message(content=f"Something went wrong on our side ({type(exc).__name__}). Your conversation "
                                     "and draft are kept; please try again.", author="Coherex").send()

    return wrapper


# ---------------------------------------------------------------------- login and start
async def _sign_in(check: Callable[[Any], Awaitable[Any]]) -> cl.User | None:
    """The chat user for whoever `check(users_repo)` returns (None: not let in; also when the database is down)."""
    try:
        db = await database()
        async with db.session(Identity.system()) as s:
            user = await check(s.users)
    except BackendError:
        log.exception("sign-in: the database is unavailable")
        return None
    except CoherexError as exc:  # e.g. too many failed tries: Chainlit can only say "not let in"
        log.warning("sign-in refused: %s", exc)
        return None
    if user is None:
        return None
    return cl.User(identifier=user.email, display_name=user.display_name or user.email,
                   metadata={"user_id": str(user.id)})


@cl.password_auth_callback
async def login(email: str, password: str) -> cl.User | None:
    return await _sign_in(lambda users: users.authenticate(email, password))


def _oauth_configured() -> bool:
    # Chainlit refuses an OAuth callback when no provider is configured (OAUTH_<PROVIDER>_CLIENT_ID …)
    return any(k.startswith("OAUTH_") and k.endswith("_CLIENT_ID") and v for k, v in os.environ.items())


if _oauth_configured():
    @cl.oauth_callback
    async def oauth_login(provider_id: str, token: str, raw_user_data: dict[str, str], default_user: cl.User,
                          id_token: str | None = None) -> cl.User | None:
        """Sign in with an identity provider: only people Coherex knows (added or invited) get in."""
        email = str(raw_user_data.get("email") or default_user.identifier or "").strip().lower()
        if "@" not in email:
            return None
        return await _sign_in(lambda users: users.sign_in_external(email, provider_id))


@cl.set_starters
async def starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    return [cl.Starter(label=t.name.replace("-", " ").capitalize(), message=t.description)
            for t in list_templates()]


@cl.on_chat_start
@safe
async def start() -> None:
    await _connect(None)


@cl.on_chat_resume
@safe
async def resume(thread: dict[str, Any]) -> None:
    """A conversation from the sidebar: the same team, draft and builder conversation as before."""
    metadata = thread.get("metadata") or {}
    state = metadata.get(STATE_KEY) if isinstance(metadata.get(STATE_KEY), dict) else {}
    builder = await _connect(_uuid(state.get("team_id") or metadata.get(TEAM_KEY)), state)
    if builder is not None and builder.draft is not None:
        welcome = cl.Message(content=f"Welcome back. The draft **{builder.draft.name}** is as you left it.",
                             author="Coherex", actions=_draft_actions(builder))
        await welcome.send()
        # Chainlit shows the stored thread after this hook returns: the welcome goes at its end
        thread.setdefault("steps", []).append(welcome.to_dict())


async def _connect(team_id: UUID | None, state: dict[str, Any] | None = None) -> BuilderSession | None:
    """Open the builder for the signed-in person in `team_id` (else their first team) and offer the
    team choice when they belong to several."""
    user = cl.user_session.get("user")
    user_id = UUID(user.metadata["user_id"])
    db = await database()
    identity = Identity.user(user_id)
    async with db.session(identity) as s:
        teams = [t for m in await s.members.teams_of(user_id) if (t := await s.teams.get(m.team_id)) is not None]
    if not teams:
        await cl.Message(content="You are not a member of any team yet. Ask an admin to add you: "
                                 f"`coherex users add {user.identifier} --team TEAM`.").send()
        return None
    team = next((t for t in teams if t.id == team_id), teams[0])
    cl.user_session.set("teams", {t.slug: str(t.id) for t in teams})
    if len(teams) > 1:
        await cl.ChatSettings([Select(id="team", label="Team", values=[t.slug for t in teams],
                                      initial_value=team.slug,
                                      description="Agents, data and runs of this team (or type /team SLUG).")]).send()
    return await _use_team(team, state)


async def _use_team(team: Any, state: dict[str, Any] | None = None) -> BuilderSession:
    """Work in `team` from now on; a draft in progress comes along (checked against the team's data)."""
    db = await database()
    user = cl.user_session.get("user")
    builder = BuilderSession(db, Identity.user(UUID(user.metadata["user_id"])), team.id, team_name=team.name)
    if state:
        await builder.restore({**state, "agent_id": state.get("agent_id") if state.get("team_id") == str(team.id)
                               else None})
    cl.user_session.set("builder", builder)
    cl.user_session.set(TEAM_KEY, str(team.id))
    await remember(builder)
    return builder


@cl.on_settings_update
@safe
async def on_settings(settings: dict[str, Any]) -> None:
    slug = settings.get("team")
    if slug:
        await _switch_team(slug)


async def _switch_team(slug: str) -> None:
    teams = cl.user_session.get("teams") or {}
    if slug not in teams:
        await cl.Message(content=f"You are not in a team {slug!r}. Your teams: "
                                 + ", ".join(f"`{t}`" for t in teams) + ".", author="Coherex").send()
        return
    current = cl.user_session.get("builder")
    if current is not None and current.team_id == UUID(teams[slug]):
        await cl.Message(content=f"You are working in team **{current.team_name}**.", author="Coherex").send()
        return
    db = await database()
    async with db.session(Identity.user(UUID(cl.user_session.get("user").metadata["user_id"]))) as s:
        team = await s.teams.get(UUID(teams[slug]))
    if team is None:
        raise CoherexError(f"The team {slug!r} is no longer available to you.")
    builder = await _use_team(team, current.state() if current else None)
    await cl.Message(content=f"Now working in team **{team.name}**"
                             + (f"; the draft **{builder.draft.name}** came along." if builder.draft else "."),
                     author="Coherex").send()


async def remember(builder: BuilderSession) -> None:
    """Keep the builder's state in the thread (resumed from the sidebar later), now rather than at disconnect."""
    state = builder.state()
    cl.user_session.set(STATE_KEY, state)
    thread_id = cl.context.session.thread_id
    if not getattr(cl.context.session, "has_first_interaction", False):
        return  # the thread is created with the first message
    try:
        from chainlit.data import get_data_layer

        await get_data_layer().update_thread(thread_id, metadata={STATE_KEY: state, TEAM_KEY: str(builder.team_id)})
    except CoherexError:
        log.warning("could not keep the conversation's state", exc_info=True)


def _uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


def _builder() -> BuilderSession:
    builder = cl.user_session.get("builder")
    if builder is None:
        raise CoherexError("This chat is not connected to a team. Reload the page after an admin added you to one.")
    return builder


# ---------------------------------------------------------------------- messages
@cl.on_message
@safe
async def on_message(message: cl.Message) -> None:
    text = message.content.strip()
    if text.startswith("/team"):
        slug = text.removeprefix("/team").strip()
        if not slug:
            teams = cl.user_session.get("teams") or {}
            current = cl.user_session.get("builder")
            await cl.Message(content="Your teams: " + ", ".join(f"`{t}`" for t in teams)
                             + (f". Working in **{current.team_name}**." if current else ".")
                             + " Switch with `/team SLUG`.", author="Coherex").send()
        else:
            await _switch_team(slug)
        return
    builder = _builder()
    files = [e for e in message.elements or [] if getattr(e, "path", None)]
    if files:
        await _uploads(builder, files)
        await remember(builder)
        if not text:
            return
    await _turn(builder, message.content)


async def _turn(builder: BuilderSession, text: str) -> None:
    answer = cl.Message(content="", author="Coherex")
    ui = ChatUI(answer)
    turn = await builder.send(text, ui)
    answer.content = turn.error or turn.text  # the final words replace what streamed before tool calls
    await answer.send()
    await remember(builder)
    if turn.draft_changed and builder.draft is not None:
        await show_draft(builder)


async def show_draft(builder: BuilderSession) -> None:
    draft = builder.draft
    assert draft is not None
    text = summarize(draft.spec)
    if draft.connections:
        teams = cl.user_session.get("teams") or {}  # slug -> id, set when the chat connected
        slug = next((slug for slug, tid in teams.items() if tid == str(builder.team_id)), None)
        text += "\n\n**Connect before saving:**\n" + "\n".join(f"- {c.instructions(slug)}" for c in draft.connections)
        text += "\n\nThen say “check again”."
    await cl.Message(content=text, author="Coherex", actions=_draft_actions(builder), elements=[
        cl.Text(name=f"{draft.name}.yaml", content=draft.yaml, language="yaml", display="inline")]).send()


def _draft_actions(builder: BuilderSession) -> list[cl.Action]:
    actions = [cl.Action(name="edit", payload={}, label="Edit", icon="pencil"),
               cl.Action(name="discard", payload={}, label="Discard", icon="trash-2")]
    if builder.draft is not None and builder.draft.ready:
        actions = [cl.Action(name="test_run", payload={}, label="Test run", icon="play"),
                   cl.Action(name="save", payload={}, label="Save", icon="save"),
                   cl.Action(name="schedule", payload={}, label="Schedule", icon="clock"), *actions]
    return actions


# ---------------------------------------------------------------------- buttons
@cl.action_callback("save")
@safe
async def on_save(action: cl.Action) -> None:
    saved = await _builder().save()
    await remember(_builder())
    await cl.Message(content=f"Saved **{saved.agent.name}** (version {saved.version.version}).", author="Coherex",
                     actions=[cl.Action(name="test_run", payload={}, label="Test run", icon="play")]).send()


@cl.action_callback("test_run")
@safe
async def on_test_run(action: cl.Action) -> None:
    builder = _builder()
    inputs: dict[str, Any] = {}
    draft = builder.draft
    for name, decl in ((draft.spec.spec.inputs or {}).items() if draft and draft.valid else []):
        if decl.default is None:
            reply = await cl.AskUserMessage(content=f"Value for **{name}**" + (f" ({decl.description})"
                                            if decl.description else "") + "?", timeout=600).send()
            if reply is None:
                return
            inputs[name] = reply["output"]
    await builder.test_run(inputs, ChatUI(None))
    await remember(builder)


@cl.action_callback("stop")
@safe
async def on_stop_action(action: cl.Action) -> None:
    if not await _builder().stop():
        await cl.Message(content="Nothing is running.", author="Coherex").send()


@cl.on_stop
async def on_stop() -> None:
    builder = cl.user_session.get("builder")
    if builder is not None:
        try:
            await builder.stop()
        except CoherexError:
            log.warning("stop failed", exc_info=True)


@cl.action_callback("discard")
@safe
async def on_discard(action: cl.Action) -> None:
    builder = _builder()
    builder.discard()
    await remember(builder)
    await cl.Message(content="Draft discarded. Describe another agent whenever you like.", author="Coherex").send()


@cl.action_callback("edit")
@safe
async def on_edit(action: cl.Action) -> None:
    reply = await cl.AskUserMessage(content="What should change? (Or paste a whole spec in YAML.)",
                                    timeout=600).send()
    if reply is None:
        return
    builder, text = _builder(), reply["output"]
    data = _as_spec(text)
    if data is None:
        await _turn(builder, text)
        return
    draft = await builder.set_draft(data)
    if draft.valid:
        await show_draft(builder)
    else:
        await cl.Message(content="That spec is not valid:\n" + "\n".join(f"- {p}" for p in draft.problems),
                         author="Coherex").send()


@cl.action_callback("schedule")
@safe
async def on_schedule(action: cl.Action) -> None:
    choices = [cl.Action(name="when", payload={"cron": cron}, label=label) for label, cron in SCHEDULE_PRESETS.items()]
    choices.append(cl.Action(name="when", payload={"cron": ""}, label="Something else"))
    picked = await cl.AskActionMessage(content="When should it run?", actions=choices, timeout=600).send()
    if picked is None:
        return
    builder = _builder()
    cron = picked["payload"]["cron"]
    if not cron:
        reply = await cl.AskUserMessage(content="Describe when (e.g. “every Friday at 17:30”).", timeout=600).send()
        if reply is not None:
            await _turn(builder, f"Schedule it: {reply['output']} (time zone {get_settings().chat_timezone}).")
        return
    answer = await builder.schedule(cron, get_settings().chat_timezone)
    if not answer.get("valid"):
        await cl.Message(content=str(answer.get("problems")), author="Coherex").send()
        return
    saved = f" Saved as version {answer['saved_version']}." if "saved_version" in answer else ""
    await cl.Message(content=f"Scheduled: {picked['label'].lower()} ({get_settings().chat_timezone}).{saved}",
                     author="Coherex").send()
    await show_draft(builder)


def _as_spec(text: str) -> dict[str, Any] | None:
    """The text as spec data when it looks like a whole spec, else None (a change request)."""
    if "apiVersion" not in text:
        return None
    try:
        data = parse(text.strip().removeprefix("```yaml").removesuffix("```"), "yaml")
    except CoherexError:
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------- uploads
async def _uploads(builder: BuilderSession, files: list[Any]) -> None:
    """A data file for a draft that runs Python goes into the sandbox of its test runs; anything
    else goes to the knowledge collection the draft searches (or `chat-uploads`)."""
    from coherex.knowledge import ingest_file

    collection = "chat-uploads"
    if builder.draft is not None and builder.draft.valid:
        collection = next((t.collection for t in builder.draft.spec.spec.tools or [] if t.collection), collection)
    for element in files:
        if builder.takes_file(element.name):
            name = await builder.add_file(element.name, Path(element.path).read_bytes())
            await cl.Message(content=f"**{name}** will be in the working directory of the next test runs.",
                             author="Coherex").send()
            if builder.unsaved:  # the spec's `file` input now names it
                await show_draft(builder)
            continue
        result = await ingest_file(builder.db, builder.identity, builder.team_id, collection, Path(element.path),
                                   element.name)
        chunks = getattr(result, "chunks", None) or getattr(result, "chunk_count", "")
        await cl.Message(content=f"Added **{element.name}** to the knowledge collection **{collection}**"
                                 + (f" ({chunks} passages)." if chunks else "."), author="Coherex").send()


# ---------------------------------------------------------------------- live steps of a run
class ChatUI(BuilderUI):
    """Streams the builder's answer into `answer` and shows a run as nested steps."""

    def __init__(self, answer: cl.Message | None):
        self.answer = answer
        self.root: cl.Step | None = None
        self.steps: dict[int, cl.Step] = {}
        self.control: cl.Message | None = None

    async def token(self, text: str) -> None:
        if self.answer is not None:
            await self.answer.stream_token(text)

    async def tool_step(self, name: str, arguments: dict[str, Any], result: str) -> None:
        async with cl.Step(name=f"builder · {name}", type="tool", show_input="json") as step:
            step.input = arguments
            step.output = result[:4000]

    async def run_started(self, execution: Execution, agent: Agent) -> None:
        self.control = cl.Message(content=f"Running **{agent.name}** (version {execution.agent_version})…",
                                  author="Coherex",
                                  actions=[cl.Action(name="stop", payload={"execution": str(execution.id)},
                                                     label="Stop", icon="square")])
        await self.control.send()
        self.root = cl.Step(name=f"run of {agent.name}", type="run", default_open=True)
        self.root.input = execution.inputs or ""
        await self.root.send()

    async def run_event(self, event: Event) -> None:
        assert self.root is not None
        p = event.payload
        parent = self.steps.get(event.parent_seq or -1, self.root)
        if event.type == "llm_call":
            calls = p.get("tool_calls") or []
            step = cl.Step(name=f"LLM · {event.name}", type="llm", parent_id=self.root.id)
            step.output = p.get("content") or ("calls " + ", ".join(c["name"] for c in calls))
            step.metadata = {"tokens_in": event.tokens_in, "tokens_out": event.tokens_out,
                             "cost_usd": float(event.cost_usd), "duration_ms": event.duration_ms}
            step.name += f" · {event.tokens_in + event.tokens_out} tokens · ${float(event.cost_usd):.5f}"
            self.steps[event.seq] = step
            await step.send()
        elif event.type == "tool_call":
            step = cl.Step(name=event.name, type="tool", parent_id=parent.id, show_input="json")
            step.input = p.get("arguments") or {}
            self.steps[event.seq] = step
            await step.send()
        elif event.type in ("stdout", "stderr"):
            await parent.stream_token(str(p.get("text", "")).rstrip("\n") + "\n")
        elif event.type == "code":
            step = cl.Step(name="code", type="tool", parent_id=parent.id, language="python", show_input="python")
            step.input = p.get("code", "")
            step.output = (f"{p['error'].get('name', 'Error')}: {p['error'].get('value', '')}"
                           if p.get("error") else "")
            step.elements = rich_elements(p.get("results") or [])
            await step.send()
        elif event.type == "tool_result":
            mark = "✓" if p.get("ok") else "✗"
            parent.name = f"{mark} {parent.name}"
            if not parent.output:
                parent.output = str(p.get("content", ""))[:4000]
            await parent.update()
        elif event.type == "error":
            await cl.Step(name="error", type="tool", parent_id=self.root.id).send()
        elif event.type == "approval_requested":
            await approval_card(event)  # Approve / Reject buttons (coherex/chat/approvals.py)

    async def run_finished(self, execution: Execution) -> None:
        if self.root is not None:
            self.root.output = execution.status
            await self.root.update()
        if self.control is not None:
            await self.control.remove_actions()
        seconds = (execution.duration_ms or 0) / 1000
        line = (f"**{execution.status}** in {seconds:.1f} s · {execution.tokens_in + execution.tokens_out} tokens · "
                f"${float(execution.cost_usd):.5f}")
        output = execution.output if isinstance(execution.output, dict) else {"text": execution.output}
        result = "\n\n".join(x for x in (output.get("text"), format_sources(output.get("sources") or [])) if x)
        body = f"{line}\n\n{result}" if result else f"{line}\n\n{execution.error or ''}"
        await cl.Message(content=body.strip(), author="Coherex").send()


install_approvals(ChatUI)  # the approval cards resume runs with this view
