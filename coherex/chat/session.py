"""Who a chat session belongs to, outside the chat: the Chainlit login cookie (or bearer token) of
the same browser, read by the HTTP API and the dashboard.

Chainlit's own HTTP routes (feedback, for one) do not tell the data layer who is calling;
`ChatCallerMiddleware` puts the caller in `http_caller` so the data layer acts as that person
under row-level security, never as the thread's author.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import jwt

from coherex.settings import get_settings

#: the signed-in chat user of the HTTP request being served (set by ChatCallerMiddleware)
http_caller: ContextVar[UUID | None] = ContextVar("coherex_chat_http_caller", default=None)


def chat_auth_secret() -> str:
    """The key Chainlit signs its login tokens with (CHAINLIT_AUTH_SECRET): set in the environment,
    else derived from COHEREX_SECRET_KEY, else a random one kept in the data dir."""
    if secret := os.environ.get("CHAINLIT_AUTH_SECRET"):
        return secret
    settings = get_settings()
    if settings.secret_key is not None:
        return hashlib.sha256(b"chainlit:" + settings.secret_key.get_secret_value().encode()).hexdigest()
    path = settings.data_path / "chainlit_auth_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def user_id_from_cookies(cookies: Mapping[str, str]) -> UUID | None:
    """The signed-in chat user's id, or None (no cookie, a bad or expired token).

    Cookies are per host, not per port: the dashboard on another port of the same host gets the
    chat's cookie too, which is how a chat login also signs in to the dashboard."""
    name = os.environ.get("CHAINLIT_AUTH_COOKIE_NAME", "access_token")
    token = cookies.get(name)
    if not token:  # a long token is split over name_0, name_1, ... (Chainlit's set_auth_cookie)
        parts = []
        while (part := cookies.get(f"{name}_{len(parts)}")) is not None:
            parts.append(part)
        token = "".join(parts)
    return user_id_from_token(token)


def user_id_from_token(token: str | None) -> UUID | None:
    if not token:
        return None
    try:
        claims = jwt.decode(token, chat_auth_secret(), algorithms=["HS256"])  # checks signature and expiry
        return UUID(str(claims["metadata"]["user_id"]))
    except Exception:  # any invalid token is simply "not signed in"
        return None


class ChatCallerMiddleware:
    """Sets `http_caller` for requests under `prefix` (the mounted chat)."""

    def __init__(self, app: Any, prefix: str = "/chat") -> None:
        self.app, self.prefix = app, prefix

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        from starlette.requests import Request

        request = Request(scope)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        caller = user_id_from_token(token) if scheme.lower() == "bearer" else None
        reset = http_caller.set(caller or user_id_from_cookies(request.cookies))
        try:
            await self.app(scope, receive, send)
        finally:
            http_caller.reset(reset)
