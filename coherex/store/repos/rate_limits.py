"""Token buckets in the database, shared by every process (see the shared_rate_limits migration)."""

from __future__ import annotations

from uuid import UUID

from coherex.store.repos._base import Repo


class RateLimitRepo(Repo):
    async def take(self, key: UUID, rate: float, burst: float) -> float | None:
        """One token from `key`'s bucket (system identity): None when allowed, else the seconds until
        a token is there."""
        wait = await self._scalar("select coherex_private.take_rate_token(%s, %s, %s)", (key, rate, burst))
        return wait or None

    async def available(self, key: UUID, rate: float, burst: float) -> float:
        """The tokens in `key`'s bucket now, taking none."""
        return float(await self._scalar("select coherex_private.rate_tokens(%s, %s, %s)", (key, rate, burst)))
