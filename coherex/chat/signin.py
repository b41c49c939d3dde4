"""Signing in to the chat: a password, or an identity provider vouching for an email Coherex knows."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import chainlit as cl

from coherex.chat.context import database
from coherex.errors import BackendError, CoherexError
from coherex.services.users import authenticate, sign_in_external

log = logging.getLogger("coherex.chat")


async def _sign_in(check: Callable[[Any], Awaitable[Any]]) -> cl.User | None:
    """The chat user for whoever `check(db)` returns (None: not let in; also when the database is down)."""
    try:
        user = await check(await database())
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


async def password_login(email: str, password: str) -> cl.User | None:
    return await _sign_in(lambda db: authenticate(db, email, password))


async def provider_login(raw_user_data: dict[str, str], default_user: cl.User, provider_id: str):
    """Only people Coherex knows (added or invited) get in."""
    email = str(raw_user_data.get("email") or default_user.identifier or "").strip().lower()
    if "@" not in email:
        return None
    return await _sign_in(lambda db: sign_in_external(db, email, provider_id))


def oauth_configured() -> bool:
    # Chainlit refuses an OAuth callback when no provider is configured (OAUTH_<PROVIDER>_CLIENT_ID …)
    return any(k.startswith("OAUTH_") and k.endswith("_CLIENT_ID") and v for k, v in os.environ.items())
