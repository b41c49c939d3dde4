"""A chat conversation with the builder: each message is a turn (attached files routed first,
`/team` handled apart), its answer streamed and the draft card shown when the draft changed; a
conversation resumed from the sidebar comes back with its team, draft and files."""

from __future__ import annotations

import logging
from typing import Any

import chainlit as cl

from coherex.builder import BuilderSession
from coherex.chat.attachments import attach_held_file, restore_files, route_uploads
from coherex.chat.context import STATE_KEY, as_uuid, current_builder, remember
from coherex.chat.data_layer import TEAM_KEY
from coherex.chat.draft_card import draft_actions, install_actions, show_draft
from coherex.chat.preferences import adopt_browser_timezone
from coherex.chat.run_view import ChatUI
from coherex.chat.teams import connect, current_slug, team_command

log = logging.getLogger(__name__)


async def start() -> None:
    await adopt_browser_timezone()
    await connect(None)


async def resume(thread: dict[str, Any]) -> None:
    """A conversation from the sidebar: the same team, draft and builder conversation as before."""
    await adopt_browser_timezone()
    metadata = thread.get("metadata") or {}
    state = metadata.get(STATE_KEY) if isinstance(metadata.get(STATE_KEY), dict) else {}
    builder = await connect(as_uuid(state.get("team_id") or metadata.get(TEAM_KEY)), state)
    missing = (
        restore_files(builder, state.get("files") or [], thread.get("elements") or []) if builder else []
    )
    if builder is not None and builder.draft is not None:
        again = f" Attach {', '.join(missing)} again for its test runs." if missing else ""
        welcome = cl.Message(
            content=f"Welcome back. The draft **{builder.draft.name}** is as you left it.{again}",
            author="Coherex",
            actions=draft_actions(builder),
        )
        await welcome.send()
        # Chainlit shows the stored thread after this hook returns: the welcome goes at its end
        thread.setdefault("steps", []).append(welcome.to_dict())


async def model_command() -> None:
    """Which model the team's builder and runs use, what the offline one can do, and where to connect one."""
    from coherex.llm.team import model_label, team_model

    builder = current_builder()
    link = f"/connect?type=model&name=team-model&team={current_slug(builder)}"
    label = await model_label(builder.db, builder.team_id)
    if await team_model(builder.db, builder.team_id) is None and builder.settings.llm_offline:
        text = (
            f"**Model:** {label}.\n\n{OFFLINE_MODEL_NOTE}\n\n[Connect a model]({link}) "
            "(OpenAI, or an OpenAI-compatible server such as Ollama or vLLM)."
        )
    else:
        text = f"**Model:** {label}.\n\n[Connect another model]({link})"
    await cl.Message(content=text, author="Coherex").send()


async def model_starter_label(user: cl.User | None) -> str:
    """The home screen's model line: the model of the person's default team, or the install's."""
    from uuid import UUID

    from coherex.chat.context import database
    from coherex.llm.team import team_model
    from coherex.services.teams import my_teams
    from coherex.settings import get_settings
    from coherex.store.db import Identity

    try:
        db = await database()
        teams = await my_teams(db, Identity.user(UUID(user.metadata["user_id"]))) if user else []
        team = await team_model(db, teams[0].id) if teams else None
    except Exception:  # the home screen never fails for a label
        log.warning("could not read the team's model for the home screen", exc_info=True)
        team = None
    if team is not None:
        return f"Model: {team.model} (team's {team.source})"
    if get_settings().llm_offline:
        return "Model: offline (small) · Connect a model"
    return f"Model: {get_settings().default_model}"


#: what the offline model is good for, in one sentence (shown where it is in use)
OFFLINE_MODEL_NOTE = (
    "The offline model is small: the builder picks templates and tools by meaning and runs use the "
    "platform's fixed tools (CSV summaries, answers from documents), but it cannot write good code "
    "or long text."
)


async def handle_message(message: cl.Message) -> None:
    text = message.content.strip()
    if text.startswith("/team"):
        await team_command(text.removeprefix("/team").strip())
        return
    if text == "/model":
        await model_command()
        return
    builder = current_builder()
    files = [e for e in message.elements or [] if getattr(e, "path", None)]
    if files:
        await route_uploads(builder, files)
        await remember(builder)
        if not text:
            return
        # the builder knows what came with the request (a CSV asks for a data-analysis agent)
        text = f"{message.content}\n\n(Attached: {', '.join(e.name for e in files)})"
    else:
        text = message.content
    await take_turn(builder, text)


async def take_turn(builder: BuilderSession, text: str) -> None:
    answer = cl.Message(content="", author="Coherex")
    ui = ChatUI(answer, on_run_started=lambda: remember(builder))
    turn = await builder.send(text, ui)
    answer.content = turn.error or turn.text  # the final words replace what streamed before tool calls
    if turn.install is not None and not turn.error:  # "install this agent from REF": confirm to save
        answer.content = turn.install.text(current_slug(builder))
        if turn.install.installable:
            answer.actions = install_actions(turn.install)
    await answer.send()
    if turn.draft_changed and builder.draft is not None:
        await attach_held_file(builder)
    await remember(builder)
    if turn.draft_changed and builder.draft is not None:
        await show_draft(builder)
