"""Who a chat session belongs to, for HTTP routes: the Chainlit login cookie (or bearer token) of
the same browser.

Chainlit's own HTTP routes (feedback, for one) do not tell the data layer who is calling;
`ChatCallerMiddleware` puts the caller in `http_caller` so the data layer acts as that person
under row-level security, never as the thread's author.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from uuid import UUID

#: the signed-in chat user of the HTTP request being served (set by ChatCallerMiddleware)
http_caller: ContextVar[UUID | None] = ContextVar("coherex_chat_http_caller", default=None)


def user_id_from_cookies(cookies: Mapping[str, str]) -> UUID | None:
    """The signed-in chat user's id, or None (no cookie, a bad or expired token, no chat secret)."""
    try:
        from chainlit.auth import get_token_from_cookies
    except ImportError:
        return None
    return user_id_from_token(get_token_from_cookies(dict(cookies)))


def user_id_from_token(token: str | None) -> UUID | None:
    try:
        from chainlit.auth import decode_jwt, get_jwt_secret
    except ImportError:
        return None
    if not token or not get_jwt_secret():
        return None
    try:
        user = decode_jwt(token)
        return UUID(str((user.metadata or {})["user_id"]))
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
