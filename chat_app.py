"""The Coherex chat (Chainlit): describe an agent, see its spec and summary, save, test-run and
schedule it, and talk to existing agents. The builder lives in `coherex.builder`, what the chat
does with it in `coherex.chat`; this file only wires them to Chainlit's hooks: login, start and
resume, messages, settings and the buttons (every failure a plain message, never a trace).

Served mounted at /chat by `coherex web`, or alone with `chainlit run chat_app.py`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import chainlit as cl

from coherex.builder import plain_error
from coherex.chat import CoherexDataLayer, actions, conversation, preferences, signin
from coherex.chat.approvals import install as install_approvals
from coherex.chat.context import database, remember
from coherex.chat.run_view import ChatUI
from coherex.chat.session import chat_auth_secret
from coherex.errors import CoherexError
from coherex.spec.templates import list_templates

log = logging.getLogger("coherex.chat")

os.environ.setdefault("CHAINLIT_AUTH_SECRET", chat_auth_secret())


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


def button(name: str, handler: Callable[..., Awaitable[Any]]) -> None:
    """Register the handler of an action button (it gets the `cl.Action`). Whatever happens in it,
    the conversation's state is kept (the thread resumes with it after a reload) and the chat ends
    usable: a question asked from a button (`Ask…Message`) turns Chainlit's "running" state (stop
    button, disabled buttons) back on once answered, and button handlers get no `task_end` of
    their own."""
    guarded = safe(handler)

    async def on_action(action: cl.Action) -> Any:
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

    on_action.__name__ = f"on_{name}"
    cl.action_callback(name)(on_action)


# ---------------------------------------------------------------------- login and start
@cl.password_auth_callback
async def login(email: str, password: str) -> cl.User | None:
    return await signin.password_login(email, password)


if signin.oauth_configured():

    @cl.oauth_callback
    async def oauth_login(
        provider_id: str,
        token: str,
        raw_user_data: dict[str, str],
        default_user: cl.User,
        id_token: str | None = None,
    ) -> cl.User | None:
        """Sign in with an identity provider: only people Coherex knows (added or invited) get in."""
        return await signin.provider_login(raw_user_data, default_user, provider_id)


@cl.set_starters
async def starters(user: cl.User | None = None, language: str | None = None) -> list[cl.Starter]:
    starters = [
        cl.Starter(label=t.name.replace("-", " ").capitalize(), message=t.description)
        for t in list_templates()
    ]
    # the home screen says which model answers (the person's default team's), and offers to connect one
    starters.append(cl.Starter(label=await conversation.model_starter_label(user), message="/model"))
    return starters


@cl.on_chat_start
@safe
async def start() -> None:
    await conversation.start()


@cl.on_chat_resume
@safe
async def resume(thread: dict[str, Any]) -> None:
    await conversation.resume(thread)


@cl.on_settings_update
@safe
async def on_settings(settings: dict[str, Any]) -> None:
    await preferences.settings_updated(settings)


@cl.on_message
@safe
async def on_message(message: cl.Message) -> None:
    await conversation.handle_message(message)


@cl.on_stop
async def on_stop() -> None:
    builder = cl.user_session.get("builder")
    if builder is not None:
        try:
            await builder.stop()
        except CoherexError:
            log.warning("stop failed", exc_info=True)


# ---------------------------------------------------------------------- buttons
button("save", actions.save)
button("test_run", actions.test_run)
button("stop", actions.stop)
button("discard", actions.discard)
button("edit", actions.edit)
button("schedule", actions.schedule)
button("install", actions.install)
button("cancel_install", actions.cancel_install)

install_approvals(ChatUI)  # the approval cards resume runs with this view
