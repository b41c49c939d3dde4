"""What every chat handler needs: the database (opened once per process), the conversation's
builder, and keeping its state in the thread so that a reload or the sidebar resumes it."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import chainlit as cl

from coherex.builder import BuilderSession
from coherex.chat.data_layer import TEAM_KEY
from coherex.errors import CoherexError
from coherex.store.db import Database, Identity

log = logging.getLogger("coherex.chat")

#: thread metadata key holding the builder's state (`BuilderSession.state()`)
STATE_KEY = "builder_state"

_db: Database | None = None


async def database() -> Database:
    global _db
    if _db is None:
        _db = await Database.from_settings().open()
    return _db


def identity() -> Identity:
    """The signed-in person of this chat session."""
    return Identity.user(UUID(cl.user_session.get("user").metadata["user_id"]))


def current_builder() -> BuilderSession:
    builder = cl.user_session.get("builder")
    if builder is None:
        raise CoherexError(
            "This chat is not connected to a team. Reload the page after an admin added you to one."
        )
    return builder


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


def as_uuid(value: Any) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None
