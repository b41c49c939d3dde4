"""Connections and the per-transaction caller identity.

Every query runs inside `Database.session(identity)`: one transaction in which the role is
switched to `authenticated` (or `service_role` for the platform's own work) and
`request.jwt.claims` is set exactly as PostgREST/Supabase set it, so `auth.uid()` and the RLS
policies see the caller. The connection itself logs in as a role that owns nothing and cannot
bypass RLS, so a bug in Python cannot read another team's rows.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from coherex.errors import BackendError, DatabaseUnavailable, QuotaExceeded, UserError
from coherex.settings import Settings, get_settings

if TYPE_CHECKING:
    from coherex.store.repos import Session


#: SQLSTATE our quota triggers raise (see the api_key_quota migration)
QUOTA_SQLSTATE = "CX402"


@dataclass(frozen=True)
class Identity:
    """Who is asking. `user_id` drives `auth.uid()`; `team_id` narrows an API key to one team."""

    user_id: UUID | None
    role: str = "authenticated"
    team_id: UUID | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def user(cls, user_id: UUID | str, team_id: UUID | str | None = None) -> Identity:
        return cls(UUID(str(user_id)), "authenticated", UUID(str(team_id)) if team_id else None)

    @classmethod
    def system(cls) -> Identity:
        """The platform itself (workers, schedulers, login). Bypasses RLS: use sparingly."""
        return cls(None, "service_role")

    def claims(self) -> str:
        c: dict = {"role": self.role, **self.extra}
        if self.user_id:
            c["sub"] = str(self.user_id)
        if self.team_id:
            c["team_id"] = str(self.team_id)
        return json.dumps(c)


@dataclass(frozen=True)
class DatabaseUrls:
    app: str  # what the application connects with (non-owner)
    admin: str  # migrations only


def resolve_urls(settings: Settings | None = None) -> DatabaseUrls:
    settings = settings or get_settings()
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        return DatabaseUrls(app=url, admin=url)
    from coherex.store.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(settings.data_path, settings.db_port)
    if not pg.status().running:
        raise BackendError(
            "The embedded database is not running.",
            hint="Start it with `coherex db start` (or `make run`), or set DATABASE_URL.",
        )
    return DatabaseUrls(app=pg.url(), admin=pg.url(admin=True))


class Database:
    """An async connection pool plus identity-scoped sessions."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10):
        self.url = url
        self._pool = AsyncConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            open=False,
            kwargs={"connect_timeout": 5},
            name="coherex",
        )

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Database:
        settings = settings or get_settings()
        return cls(resolve_urls(settings).app, max_size=settings.db_pool_max)

    async def open(self) -> Database:
        try:
            await self._pool.open(wait=True, timeout=10)
        except Exception as exc:
            await self._pool.close()
            raise BackendError(
                f"Cannot connect to the database: {exc}",
                hint="Is it running? `coherex db status` tells; `coherex db start` starts the embedded one.",
            ) from exc
        try:
            await self._check_schema()
        except BaseException:
            await self._pool.close()
            raise
        return self

    async def _check_schema(self) -> None:
        """Refuse to work on a schema older than this code: say so instead of failing mid-request."""
        from coherex.store.migrate import latest_version

        latest = latest_version()
        async with self._pool.connection() as conn:
            cur = await conn.execute("select to_regclass('coherex_meta.schema_migrations') is not null")
            up_to_date = (await cur.fetchone())[0]
            if up_to_date:
                cur = await conn.execute(
                    "select exists (select 1 from coherex_meta.schema_migrations where version = %s)",
                    (latest,),
                )
                up_to_date = (await cur.fetchone())[0]
        if not up_to_date:
            raise BackendError(
                "The database schema is older than this version of Coherex (or was never created).",
                hint="Run `coherex db migrate`; it keeps all existing data.",
            )

    async def close(self) -> None:
        await self._pool.close()

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @asynccontextmanager
    async def connection(self, identity: Identity) -> AsyncIterator[psycopg.AsyncConnection]:
        """A connection inside one transaction that runs as `identity`."""
        try:
            async with self._transaction(identity) as conn:
                yield conn
        except psycopg.errors.InsufficientPrivilege as exc:
            from coherex.errors import PermissionDenied

            raise PermissionDenied(
                f"Not allowed: {exc.diag.message_primary or exc}", hint=exc.diag.message_hint
            ) from exc
        except psycopg.errors.CheckViolation as exc:
            raise UserError(f"Invalid value: {exc.diag.message_primary}") from exc
        except psycopg.DataError as exc:  # class 22: the value itself (a NUL character, a lone surrogate, …)
            raise UserError(
                f"Invalid value: {exc.diag.message_primary or exc}",
                hint="Text may not contain NUL characters or unpaired surrogates.",
            ) from exc
        except psycopg.OperationalError as exc:
            # only a lost or refused connection (no SQLSTATE, class 08, or a server shutdown, 57P)
            if exc.sqlstate is None or exc.sqlstate.startswith(("08", "57P")):
                raise DatabaseUnavailable(f"The database connection failed: {str(exc).strip()}") from exc
            raise
        except psycopg.DatabaseError as exc:
            # our own SQLSTATEs arrive as the generic class; anything else is not ours to translate
            if type(exc) is not psycopg.DatabaseError or exc.sqlstate != QUOTA_SQLSTATE:
                raise
            raise QuotaExceeded(exc.diag.message_primary or str(exc), hint=exc.diag.message_hint) from exc

    @asynccontextmanager
    async def _transaction(self, identity: Identity) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection in a transaction that runs as `identity`. Idle connections die with
        a database restart: when the first statement finds its connection dead (nothing ran yet),
        the pool drops every dead one (`check`) and the transaction starts again on a live one, so
        requests right after a restart are served instead of failing once per dead connection.
        (psycopg_pool 3.3.3's own `check=` hook left a waiting request stuck for its whole timeout.)"""
        for attempt in (1, 2):
            async with AsyncExitStack() as stack:
                conn = await stack.enter_async_context(self._pool.connection())
                try:
                    await stack.enter_async_context(conn.transaction())
                    await conn.execute(
                        "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                        (identity.role, identity.claims()),
                    )
                except psycopg.OperationalError:
                    if attempt == 2 or not conn.broken:
                        raise
                else:
                    yield conn
                    return
            await self._pool.check()

    @asynccontextmanager
    async def session(self, identity: Identity) -> AsyncIterator[Session]:
        from coherex.store.repos import Session

        async with self.connection(identity) as conn:
            yield Session(conn, identity)


class Listener:
    """Follow NOTIFYs: `async with Listener(url, "coherex_events") as l: async for channel, payload in l`.

    LISTEN is in place when `__aenter__` returns, so nothing sent after it is missed. Uses its own
    autocommit connection (not the pool; on Supabase the direct connection, not the 6543 pooler).
    """

    def __init__(self, url: str, *channels: str):
        self.url = url
        self.channels = channels
        self._conn: psycopg.AsyncConnection | None = None

    async def __aenter__(self) -> Listener:
        try:
            self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError as exc:
            raise BackendError(f"Cannot follow database changes: {exc}") from exc
        for ch in self.channels:
            await self._conn.execute(f'listen "{ch}"')
        return self

    async def __aexit__(self, *exc) -> None:
        if self._conn is not None:
            await self._conn.close()

    async def __aiter__(self) -> AsyncIterator[tuple[str, dict]]:
        assert self._conn is not None, "use `async with Listener(...)`"
        async for note in self._conn.notifies():
            yield note.channel, json.loads(note.payload)
