"""Signing in to the dashboard: the same users as the chat (`users.authenticate`), then a reader
that runs as that person — a database identity (SQL reader) or a JWT (Supabase reader)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from uuid import UUID

import jwt

from coherex.dashboard.data import Reader, SqlReader, SupabaseReader, SyncDatabase
from coherex.settings import Settings
from coherex.store.db import Identity
from coherex.store.models import Team, User

JWT_TTL_SECONDS = 3600


def sign_jwt(secret: str, *, role: str = "authenticated", user_id: UUID | None = None,
             ttl: int = JWT_TTL_SECONDS) -> str:
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

    async def go() -> SignedIn | None:
        async with database.db.session(Identity.system()) as s:
            user = await s.users.authenticate(email, password)
        if user is None:
            return None
        async with database.db.session(Identity.user(user.id)) as s:
            return SignedIn(user, await s.teams.list())

    return database.run(go())


def reader_for(settings: Settings, database: SyncDatabase, user_id: UUID) -> Reader:
    """The reader the settings choose, acting as `user_id`."""
    if settings.dashboard_reader == "supabase":
        missing = [name for name, value in (("SUPABASE_URL", settings.supabase_url),
                                            ("SUPABASE_ANON_KEY", settings.supabase_anon_key),
                                            ("SUPABASE_JWT_SECRET", settings.supabase_jwt_secret)) if not value]
        if missing:
            from coherex.errors import UserError

            raise UserError(f"COHEREX_DASHBOARD_READER=supabase needs {', '.join(missing)}.")
        token = sign_jwt(settings.supabase_jwt_secret.get_secret_value(), user_id=user_id)  # type: ignore[union-attr]
        return SupabaseReader(settings.supabase_url, settings.supabase_anon_key.get_secret_value(), token)  # type: ignore[arg-type, union-attr]
    return SqlReader(database, Identity.user(user_id))
