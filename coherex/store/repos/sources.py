"""Data sources. Credentials are stored as vault ciphertext and are readable only by the
service identity (the column is not granted to `authenticated`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import class_row

from coherex.store.models import DataSource
from coherex.store.repos._base import Jsonb, Repo, require

_COLS = (
    "id, team_id, name, type, config, credentials_key_id, status, last_error, failing_since, "
    "last_checked_at, created_by, created_at, updated_at, tools, tools_checked_at"
)


class DataSourceRepo(Repo):
    async def create(
        self,
        team_id: UUID,
        name: str,
        type: str,
        config: dict[str, Any],
        *,
        credentials_encrypted: str | None = None,
        credentials_key_id: str | None = None,
    ) -> DataSource:
        return require(
            await self._one(
                DataSource,
                f"insert into public.data_sources (team_id, name, type, config, credentials_encrypted, "
                f"credentials_key_id, created_by) values (%s, %s, %s, %s, %s, %s, %s) returning {_COLS}",
                (
                    team_id,
                    name,
                    type,
                    Jsonb(config),
                    credentials_encrypted,
                    credentials_key_id,
                    self.identity.user_id,
                ),
            ),
            "data source",
        )

    async def get(self, source_id: UUID) -> DataSource | None:
        return await self._one(
            DataSource, f"select {_COLS} from public.data_sources where id = %s", (source_id,)
        )

    async def get_by_name(self, team_id: UUID, name: str) -> DataSource | None:
        return await self._one(
            DataSource,
            f"select {_COLS} from public.data_sources where team_id = %s and name = %s",
            (team_id, name),
        )

    async def list(self, team_id: UUID | None = None) -> list[DataSource]:
        return await self._all(
            DataSource,
            f"select {_COLS} from public.data_sources where (%(t)s::uuid is null or team_id = %(t)s) order "
            "by name",
            {"t": team_id},
        )

    async def names_and_types(self, team_id: UUID) -> dict[str, str]:
        """What spec validation needs to check references."""
        return {s.name: s.type for s in await self.list(team_id)}

    async def credentials(self, source_id: UUID) -> tuple[str | None, str | None]:
        """(ciphertext, key id). Only the service identity may read these."""
        async with self.conn.cursor() as cur:
            await cur.execute(
                "select credentials_encrypted, credentials_key_id from public.data_sources where id = %s",
                (source_id,),
            )
            row = await cur.fetchone()
        return (row[0], row[1]) if row else (None, None)

    async def set_credentials(self, source_id: UUID, ciphertext: str, key_id: str) -> None:
        await self._exec(
            "update public.data_sources set credentials_encrypted = %s, credentials_key_id = %s "
            "where id = %s",
            (ciphertext, key_id, source_id),
        )

    async def record_check(self, source_id: UUID, *, ok: bool, error: str | None = None) -> DataSource:
        """Track health: failing since the first failure, cleared on success."""
        return require(
            await self._one(
                DataSource,
                f"update public.data_sources set last_checked_at = now(), "
                f"status = case when %(ok)s then 'active' else 'failing' end, "
                f"last_error = case when %(ok)s then null else %(err)s end, "
                f"failing_since = case when %(ok)s then null else coalesce(failing_since, now()) end "
                f"where id = %(id)s returning {_COLS}",
                {"ok": ok, "err": error, "id": source_id},
            ),
            "data source",
        )

    async def set_tools(self, source_id: UUID, tools: list[dict[str, Any]]) -> None:
        """The tools the source offers now (discovered: MCP, OpenAPI), and that they were just read."""
        await self._exec(
            "update public.data_sources set tools = %s, tools_checked_at = now() where id = %s",
            (Jsonb(tools), source_id),
        )

    async def tools_due(self, types: list[str], older_than: datetime) -> list[DataSource]:
        """Sources of these types whose discovered tools were read before `older_than` (or never)."""
        return await self._all(
            DataSource,
            f"select {_COLS} from public.data_sources where type = any(%s) "
            "and (tools_checked_at is null or tools_checked_at < %s) order by tools_checked_at nulls first",
            (types, older_than),
        )

    async def delete(self, source_id: UUID) -> bool:
        return await self._exec("delete from public.data_sources where id = %s", (source_id,)) > 0

    async def all_credentials(self) -> list[tuple[UUID, UUID, str, str | None]]:
        """(id, team id, ciphertext, key id) of every source with credentials: key rotation. Service only."""
        async with self.conn.cursor() as cur:
            await cur.execute(
                "select id, team_id, credentials_encrypted, credentials_key_id from public.data_sources "
                "where credentials_encrypted is not null order by id for update"
            )
            return [tuple(r) for r in await cur.fetchall()]

    # --- pending OAuth2 authorisations (service identity only) ---
    async def put_oauth_state(self, state: OAuthState) -> None:
        await self._exec("delete from coherex_private.oauth_states where expires_at < now()")
        await self._exec(
            "insert into coherex_private.oauth_states (state_hash, team_id, user_id, provider, source_type, "
            "source_name, "
            "config, verifier_encrypted, redirect_uri, expires_at) values (%s, %s, %s, %s, %s, %s, %s, %s, "
            "%s, %s)",
            (
                state.state_hash,
                state.team_id,
                state.user_id,
                state.provider,
                state.source_type,
                state.source_name,
                Jsonb(state.config),
                state.verifier_encrypted,
                state.redirect_uri,
                state.expires_at,
            ),
        )

    async def take_oauth_state(self, state_hash: str) -> OAuthState | None:
        """The pending flow for this state, removed so it works once; None if unknown or expired."""
        async with self.conn.cursor(row_factory=class_row(OAuthState)) as cur:
            await cur.execute(
                "delete from coherex_private.oauth_states where state_hash = %s returning state_hash, "
                "team_id, user_id, "
                "provider, source_type, source_name, config, verifier_encrypted, redirect_uri, expires_at",
                (state_hash,),
            )
            row = await cur.fetchone()
        if row is None or row.expires_at < datetime.now(row.expires_at.tzinfo):
            return None
        return row


@dataclass
class OAuthState:
    state_hash: str
    team_id: UUID
    user_id: UUID | None
    provider: str
    source_type: str
    source_name: str
    config: dict[str, Any]
    verifier_encrypted: str
    redirect_uri: str
    expires_at: datetime
