"""API keys: shown once at creation, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from uuid import UUID

from coherex.store.models import ApiKey
from coherex.store.repos._base import Repo, require

_COLS = "id, team_id, name, prefix, user_id, scopes, last_used_at, expires_at, revoked_at, created_at"
KEY_PREFIX = "cx_"


def hash_key(key: str) -> str:
    # Keys are 32 random bytes, so a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyRepo(Repo):
    async def create(
        self,
        team_id: UUID,
        name: str,
        *,
        user_id: UUID | None = None,
        scopes: list[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """(record, plaintext key). The plaintext is never stored or shown again."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = await self._one(
            ApiKey,
            f"insert into public.api_keys (team_id, name, prefix, key_hash, user_id, scopes, expires_at) "
            f"values (%s, %s, %s, %s, %s, %s, %s) returning {_COLS}",
            (
                team_id,
                name,
                key[:10],
                hash_key(key),
                user_id or self.identity.user_id,
                scopes or [],
                expires_at,
            ),
        )
        return require(row, "api key"), key

    async def resolve(self, key: str) -> ApiKey | None:
        """The live key record for a presented key (system identity: runs before we know the caller)."""
        row = await self._one(
            ApiKey,
            f"update public.api_keys k set last_used_at = now() where key_hash = %s and revoked_at is null "
            f"and (expires_at is null or expires_at > now()) and exists (select 1 from public.team_members m "
            f"where m.team_id = k.team_id and m.user_id = k.user_id) returning {_COLS}",
            (hash_key(key),),
        )
        return row

    async def list(self, team_id: UUID) -> list[ApiKey]:
        return await self._all(
            ApiKey, f"select {_COLS} from public.api_keys where team_id = %s order by created_at", (team_id,)
        )

    async def revoke(self, key_id: UUID) -> bool:
        return (
            await self._exec(
                "update public.api_keys set revoked_at = now() where id = %s and revoked_at is null",
                (key_id,),
            )
            > 0
        )
