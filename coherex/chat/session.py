"""Who a chat session belongs to, for the HTTP API: the Chainlit login cookie of the same browser."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID


def user_id_from_cookies(cookies: Mapping[str, str]) -> UUID | None:
    """The signed-in chat user's id, or None (no cookie, a bad or expired token, no chat secret)."""
    try:
        from chainlit.auth import decode_jwt, get_jwt_secret, get_token_from_cookies
    except ImportError:
        return None
    token = get_token_from_cookies(dict(cookies))
    if not token or not get_jwt_secret():
        return None
    try:
        user = decode_jwt(token)
        return UUID(str((user.metadata or {})["user_id"]))
    except Exception:  # any invalid token is simply "not signed in"
        return None
