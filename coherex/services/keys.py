"""API keys of a team: created (the key shown once, only its hash stored), listed, revoked."""

from __future__ import annotations

from uuid import UUID

from coherex.store.db import Database, Identity
from coherex.store.models import ApiKey


async def create_key(db: Database, who: Identity, team_id: UUID, name: str) -> tuple[ApiKey, str]:
    """The key's record and the key itself (audited)."""
    async with db.session(who) as s:
        record, key = await s.api_keys.create(team_id, name)
        await s.audit.record(
            team_id, "api_key.create", target_type="api_key", target_id=str(record.id), details={"name": name}
        )
    return record, key


async def list_keys(db: Database, who: Identity, team_id: UUID) -> list[ApiKey]:
    async with db.session(who) as s:
        return await s.api_keys.list(team_id)


async def revoke_key(db: Database, who: Identity, team_id: UUID, key_id: UUID) -> bool:
    """Revoke at once; False when there was no active key of that id (audited when done)."""
    async with db.session(who) as s:
        done = await s.api_keys.revoke(key_id)
        if done:
            await s.audit.record(team_id, "api_key.revoke", target_type="api_key", target_id=str(key_id))
    return done


async def resolve_key(db: Database, key: str) -> ApiKey | None:
    """The live key record for a presented API key (None: unknown, revoked or expired)."""
    async with db.session(Identity.system()) as s:
        return await s.api_keys.resolve(key.strip())


async def take_rate_token(db: Database, bucket: UUID, per_second: float, burst: float) -> float | None:
    """Take one request's token from `bucket` (shared by every process): None when allowed, else
    the seconds until a token is there."""
    async with db.session(Identity.system()) as s:
        return await s.rate_limits.take(bucket, per_second, burst)
