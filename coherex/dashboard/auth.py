"""Signing in to the dashboard: the same users as the chat (`users.authenticate`, or the chat's
login cookie of the same browser), then a reader that runs as that person — a database identity
(SQL reader) or a JWT (Supabase reader)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

import jwt

from coherex.dashboard.data import Reader, SqlReader, SupabaseReader, SyncDatabase
from coherex.settings import Settings
from coherex.store.db import Identity
from coherex.store.models import Team, User

JWT_TTL_SECONDS = 3600


def sign_jwt(
    secret: str, *, role: str = "authenticated", user_id: UUID | None = None, ttl: int = JWT_TTL_SECONDS
) -> str:
    """A Supabase-style access token (HS256 with the project's JWT secret)."""
    now = int(time.time())
    claims: dict = {"role": role, "iat": now, "exp": now + ttl}
    if user_id is not None:
        claims |= {"sub": str(user_id), "aud": "authenticated"}
    return jwt.encode(claims, secret, algorithm="HS256")


@dataclass(frozen=True)
class SignedIn:
    user: User
    teams: list[Team]


def sign_in(database: SyncDatabase, email: str, password: str) -> SignedIn | None:
    """The person and their teams, or None when the email or password is wrong."""

    async def go() -> User | None:
        async with database.db.session(Identity.system()) as s:
            return await s.users.authenticate(email, password)

    return _with_teams(database, database.run(go()))


def sign_in_with_chat_cookie(database: SyncDatabase, cookies: Mapping[str, str]) -> SignedIn | None:
    """The person signed in to the chat in this browser (its login cookie, sent to every port of
    the host), or None: no cookie, an invalid or expired one, or an account since removed."""
    from coherex.chat.session import user_id_from_cookies

    user_id = user_id_from_cookies(cookies)
    if user_id is None:
        return None

    async def go() -> User | None:
        async with database.db.session(Identity.system()) as s:
            return await s.users.get(user_id)

    return _with_teams(database, database.run(go()))


def _with_teams(database: SyncDatabase, user: User | None) -> SignedIn | None:
    if user is None:
        return None

    async def go() -> SignedIn:
        async with database.db.session(Identity.user(user.id)) as s:
            return SignedIn(user, await s.teams.list())

    return database.run(go())


def reader_for(settings: Settings, database: SyncDatabase, user_id: UUID) -> Reader:
    """The reader the settings choose, acting as `user_id`."""
    if settings.dashboard_reader == "supabase":
        missing = [
            name
            for name, value in (
                ("SUPABASE_URL", settings.supabase_url),
                ("SUPABASE_ANON_KEY", settings.supabase_anon_key),
                ("SUPABASE_JWT_SECRET", settings.supabase_jwt_secret),
            )
            if not value
        ]
        if missing:
            from coherex.errors import UserError

            raise UserError(f"COHEREX_DASHBOARD_READER=supabase needs {', '.join(missing)}.")
        token = sign_jwt(settings.supabase_jwt_secret.get_secret_value(), user_id=user_id)  # type: ignore[union-attr]
        return SupabaseReader(settings.supabase_url, settings.supabase_anon_key.get_secret_value(), token)  # type: ignore[arg-type, union-attr]
    return SqlReader(database, Identity.user(user_id))
