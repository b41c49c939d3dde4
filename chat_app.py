"""The Coherex chat (Chainlit): describe an agent, see its spec and summary, save, test-run and
schedule it, and talk to existing agents. The builder itself lives in `coherex.builder`; this file
only connects it to Chainlit: login, the draft card with its buttons, live run steps, uploads.

Served mounted at /chat by `coherex web`, or alone with `chainlit run chat_app.py`.
"""

from __future__ import annotations

import base64
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import chainlit as cl
from chainlit.input_widget import Select

from coherex.builder import BuilderSession, plain_error, summarize
from coherex.builder.session import DATA_SUFFIXES
from coherex.chat import CoherexDataLayer
from coherex.chat.approvals import install as install_approvals
from coherex.chat.data_layer import TEAM_KEY
from coherex.chat.run_view import ChatUI
from coherex.chat.session import chat_auth_secret
from coherex.errors import BackendError, CoherexError, UserError
from coherex.runtime.tools import FILE_INPUT
from coherex.settings import get_settings
from coherex.spec import parse
from coherex.spec.templates import list_templates
from coherex.store.db import Database, Identity

log = logging.getLogger("coherex.chat")

SCHEDULE_PRESETS = {
    "Weekdays at 08:00": "0 8 * * 1-5",
    "Every day at 09:00": "0 9 * * *",
    "Mondays at 09:00": "0 9 * * 1",
    "Every hour": "0 * * * *",
}
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
            await cl.Message(
                content=f"Something went wrong on our side ({type(exc).__name__}). Your conversation "
                "and draft are kept; please try again.",
                author="Coherex",
            ).send()

    return wrapper


def button(name: str) -> Callable[[Callable[..., Awaitable[Any]]], Any]:
    """Register the handler of an action button. Whatever happens in it, the conversation's state is
    kept (the thread resumes with it after a reload) and the chat ends usable: a question asked from
    a button (`Ask…Message`) turns Chainlit's "running" state (stop button, disabled buttons) back
    on once answered, and button handlers get no `task_end` of their own."""

    def register(handler: Callable[..., Awaitable[Any]]) -> Any:
        guarded = safe(handler)

        @functools.wraps(handler)
        async def wrapper(action: cl.Action) -> Any:
            try:
                return await guarded(action)
            finally:
                builder = cl.user_session.get("builder")
                if builder is not None:
                    try:
                        await remember(builder)
                    except Exception:
                        log.warning("could not keep the conversation's state", exc_info=True)
                await cl.context.emitter.task_end()

        return cl.action_callback(name)(wrapper)

    return register


# ---------------------------------------------------------------------- login and start
async def _sign_in(check: Callable[[Any], Awaitable[Any]]) -> cl.User | None:
    """The chat user for whoever `check(users_repo)` returns (None: not let in; also when the database
    is down)."""
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
    return cl.User(
        identifier=user.email,
        display_name=user.display_name or user.email,
        metadata={"user_id": str(user.id)},
    )


@cl.password_auth_callback
async def login(email: str, password: str) -> cl.User | None:
    return await _sign_in(lambda users: users.authenticate(email, password))


def _oauth_configured() -> bool:
    # Chainlit refuses an OAuth callback when no provider is configured (OAUTH_<PROVIDER>_CLIENT_ID …)
    return any(k.startswith("OAUTH_") and k.endswith("_CLIENT_ID") and v for k, v in os.environ.items())


if _oauth_configured():

    @cl.oauth_callback
    async def oauth_login(
        provider_id: str,
        token: str,
        raw_user_data: dict[str, str],
        default_user: cl.User,
        id_token: str | None = None,
    ) -> cl.User | None:
        """Sign in with an identity provider: only people Coherex knows (added or invited) get in."""
        email = str(raw_user_data.get("email") or default_user.identifier or "").strip().lower()
        if "@" not in email:
            return None
        return await _sign_in(lambda users: users.sign_in_external(email, provider_id))


@cl.set_starters
async def starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    return [
        cl.Starter(label=t.name.replace("-", " ").capitalize(), message=t.description)
        for t in list_templates()
    ]


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
    missing = (
        _restore_files(builder, state.get("files") or [], thread.get("elements") or []) if builder else []
    )
    if builder is not None and builder.draft is not None:
        again = f" Attach {', '.join(missing)} again for its test runs." if missing else ""
        welcome = cl.Message(
            content=f"Welcome back. The draft **{builder.draft.name}** is as you left it.{again}",
            author="Coherex",
            actions=_draft_actions(builder),
        )
        await welcome.send()
        # Chainlit shows the stored thread after this hook returns: the welcome goes at its end
        thread.setdefault("steps", []).append(welcome.to_dict())


def _restore_files(builder: BuilderSession, names: list[str], elements: list[dict[str, Any]]) -> list[str]:
    """Files attached earlier in the thread go into the next test runs again: the thread keeps each
    attachment (up to 5 MB) as an element. Returns the names it no longer has."""
    wanted = {str(n) for n in names}
    for element in reversed(elements):  # the latest upload of a name wins
        name, url = element.get("name"), str(element.get("url") or "")
        if name in wanted and name not in builder.files and url.startswith("data:") and ";base64," in url:
            builder.files[name] = base64.b64decode(url.partition(",")[2])
    return sorted(wanted - set(builder.files))


async def _connect(team_id: UUID | None, state: dict[str, Any] | None = None) -> BuilderSession | None:
    """Open the builder for the signed-in person in `team_id` (else their first team) and offer the
    team choice when they belong to several."""
    user = cl.user_session.get("user")
    user_id = UUID(user.metadata["user_id"])
    db = await database()
    identity = Identity.user(user_id)
    async with db.session(identity) as s:
        teams = [
            t for m in await s.members.teams_of(user_id) if (t := await s.teams.get(m.team_id)) is not None
        ]
    if not teams:
        await cl.Message(
            content="You are not a member of any team yet. Ask an admin to add you: "
            f"`coherex users add {user.identifier} --team TEAM`."
        ).send()
        return None
    team = next((t for t in teams if t.id == team_id), teams[0])
    cl.user_session.set("teams", {t.slug: str(t.id) for t in teams})
    if len(teams) > 1:
        await cl.ChatSettings(
            [
                Select(
                    id="team",
                    label="Team",
                    values=[t.slug for t in teams],
                    initial_value=team.slug,
                    description="Agents, data and runs of this team (or type /team SLUG).",
                )
            ]
        ).send()
    return await _use_team(team, state)


async def _use_team(team: Any, state: dict[str, Any] | None = None) -> BuilderSession:
    """Work in `team` from now on; a draft in progress comes along (checked against the team's data)."""
    db = await database()
    user = cl.user_session.get("user")
    builder = BuilderSession(db, Identity.user(UUID(user.metadata["user_id"])), team.id, team_name=team.name)
    if state:
        await builder.restore(
            {**state, "agent_id": state.get("agent_id") if state.get("team_id") == str(team.id) else None}
        )
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
        await cl.Message(
            content=f"You are not in a team {slug!r}. Your teams: "
            + ", ".join(f"`{t}`" for t in teams)
            + ".",
            author="Coherex",
        ).send()
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
    await cl.Message(
        content=f"Now working in team **{team.name}**"
        + (f"; the draft **{builder.draft.name}** came along." if builder.draft else "."),
        author="Coherex",
    ).send()


async def remember(builder: BuilderSession) -> None:
    """Keep the builder's state in the thread (resumed from the sidebar later), now rather than at
    disconnect."""
    state = builder.state()
    cl.user_session.set(STATE_KEY, state)
    thread_id = cl.context.session.thread_id
    if not getattr(cl.context.session, "has_first_interaction", False):
        return  # the thread is created with the first message
    try:
        from chainlit.data import get_data_layer

        await get_data_layer().update_thread(
            thread_id, metadata={STATE_KEY: state, TEAM_KEY: str(builder.team_id)}
        )
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
        raise CoherexError(
            "This chat is not connected to a team. Reload the page after an admin added you to one."
        )
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
            await cl.Message(
                content="Your teams: "
                + ", ".join(f"`{t}`" for t in teams)
                + (f". Working in **{current.team_name}**." if current else ".")
                + " Switch with `/team SLUG`.",
                author="Coherex",
            ).send()
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
        # the builder knows what came with the request (a CSV asks for a data-analysis agent)
        text = f"{message.content}\n\n(Attached: {', '.join(e.name for e in files)})"
    else:
        text = message.content
    await _turn(builder, text)


async def _turn(builder: BuilderSession, text: str) -> None:
    answer = cl.Message(content="", author="Coherex")
    ui = ChatUI(answer, on_run_started=lambda: remember(builder))
    turn = await builder.send(text, ui)
    answer.content = turn.error or turn.text  # the final words replace what streamed before tool calls
    await answer.send()
    if turn.draft_changed and builder.draft is not None:
        await _attach_held_file(builder)
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
        text += "\n\n**Connect before saving:**\n" + "\n".join(
            f"- {c.instructions(slug)}" for c in draft.connections
        )
        text += "\n\nThen say “check again”."
    await cl.Message(
        content=text,
        author="Coherex",
        actions=_draft_actions(builder),
        elements=[cl.Text(name=f"{draft.name}.yaml", content=draft.yaml, language="yaml", display="inline")],
    ).send()


def _draft_actions(builder: BuilderSession) -> list[cl.Action]:
    actions = [
        cl.Action(name="edit", payload={}, label="Edit", icon="pencil"),
        cl.Action(name="discard", payload={}, label="Discard", icon="trash-2"),
    ]
    if builder.draft is not None and builder.draft.ready:
        actions = [
            cl.Action(name="test_run", payload={}, label="Test run", icon="play"),
            cl.Action(name="save", payload={}, label="Save", icon="save"),
            cl.Action(name="schedule", payload={}, label="Schedule", icon="clock"),
            *actions,
        ]
    return actions


# ---------------------------------------------------------------------- buttons
@button("save")
async def on_save(action: cl.Action) -> None:
    saved = await _builder().save()
    await cl.Message(
        content=f"Saved **{saved.agent.name}** (version {saved.version.version}).",
        author="Coherex",
        actions=[cl.Action(name="test_run", payload={}, label="Test run", icon="play")],
    ).send()


@button("test_run")
async def on_test_run(action: cl.Action) -> None:
    builder = _builder()
    inputs: dict[str, Any] = {}
    draft = builder.draft
    for name, decl in (draft.spec.spec.inputs or {}).items() if draft and draft.valid else []:
        if decl.default is None:
            reply = await cl.AskUserMessage(
                content=f"Value for **{name}**"
                + (f" ({decl.description})" if decl.description else "")
                + "?",
                timeout=600,
            ).send()
            if reply is None:
                return
            inputs[name] = reply["output"]
    # the draft is saved before the run starts: keep that now (a reload during a long run finds the agent)
    await builder.test_run(inputs, ChatUI(None, on_run_started=lambda: remember(builder)))


@button("stop")
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


@button("discard")
async def on_discard(action: cl.Action) -> None:
    builder = _builder()
    builder.discard()
    await cl.Message(
        content="Draft discarded. Describe another agent whenever you like.", author="Coherex"
    ).send()


@button("edit")
async def on_edit(action: cl.Action) -> None:
    reply = await cl.AskUserMessage(
        content="What should change? (Or paste a whole spec in YAML.)", timeout=600
    ).send()
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
        await cl.Message(
            content="That spec is not valid:\n" + "\n".join(f"- {p}" for p in draft.problems),
            author="Coherex",
        ).send()


@button("schedule")
async def on_schedule(action: cl.Action) -> None:
    choices = [
        cl.Action(name="when", payload={"cron": cron}, label=label)
        for label, cron in SCHEDULE_PRESETS.items()
    ]
    choices.append(cl.Action(name="when", payload={"cron": ""}, label="Something else"))
    picked = await cl.AskActionMessage(content="When should it run?", actions=choices, timeout=600).send()
    if picked is None:
        return
    builder = _builder()
    cron = picked["payload"]["cron"]
    if not cron:
        reply = await cl.AskUserMessage(
            content="Describe when (e.g. “every Friday at 17:30”).", timeout=600
        ).send()
        if reply is not None:
            await _turn(
                builder, f"Schedule it: {reply['output']} (time zone {get_settings().chat_timezone})."
            )
        return
    answer = await builder.schedule(cron, get_settings().chat_timezone)
    if not answer.get("valid"):
        await cl.Message(content=str(answer.get("problems")), author="Coherex").send()
        return
    saved = f" Saved as version {answer['saved_version']}." if "saved_version" in answer else ""
    await cl.Message(
        content=f"Scheduled: {picked['label'].lower()} ({get_settings().chat_timezone}).{saved}",
        author="Coherex",
    ).send()
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
def _read_upload(element: Any) -> bytes:
    data = Path(element.path).read_bytes()
    if not data:
        raise UserError(
            f"{element.name} is empty: there is nothing in it to use. Attach the file with its content."
        )
    return data


async def _attach_held_file(builder: BuilderSession) -> None:
    """A data file held from before the draft existed: the new draft's `file` input names it."""
    if not builder.files or builder.draft is None:
        return
    name = next(reversed(builder.files))  # the latest upload
    declared = (builder.draft.spec.spec.inputs or {}).get(FILE_INPUT)
    if declared is not None and declared.default != name and builder.takes_file(name):
        await builder.add_file(name, builder.files[name])
        await cl.Message(
            content=f"**{name}** will be in the working directory of the test runs.", author="Coherex"
        ).send()


async def _uploads(builder: BuilderSession, files: list[Any]) -> None:
    """A data file for a draft that runs Python goes into the sandbox of its test runs (one sent
    before there is a draft is held for the draft its request makes); anything else goes to the
    knowledge collection the draft searches (or `chat-uploads`)."""
    from coherex.knowledge import ingest_file

    collection = "chat-uploads"
    if builder.draft is not None and builder.draft.valid:
        collection = next(
            (t.collection for t in builder.draft.spec.spec.tools or [] if t.collection), collection
        )
    for element in files:
        if builder.draft is None and Path(element.name).suffix.lower() in DATA_SUFFIXES:
            # a data file sent with the first request: held for the draft that request makes
            builder.files[Path(element.name).name] = _read_upload(element)
            await cl.Message(
                content=f"**{element.name}** is kept for the test runs of the agent you describe.",
                author="Coherex",
            ).send()
            continue
        if builder.takes_file(element.name):
            name = await builder.add_file(element.name, _read_upload(element))
            await cl.Message(
                content=f"**{name}** will be in the working directory of the next test runs.",
                author="Coherex",
            ).send()
            if builder.unsaved:  # the spec's `file` input now names it
                await show_draft(builder)
            continue
        result = await ingest_file(
            builder.db, builder.identity, builder.team_id, collection, Path(element.path), element.name
        )
        chunks = getattr(result, "chunks", None) or getattr(result, "chunk_count", "")
        await cl.Message(
            content=f"Added **{element.name}** to the knowledge collection **{collection}**"
            + (f" ({chunks} passages)." if chunks else "."),
            author="Coherex",
        ).send()


install_approvals(ChatUI)  # the approval cards resume runs with this view
