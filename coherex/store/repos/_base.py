"""Shared plumbing for repositories: typed fetches and error mapping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from coherex.errors import Conflict, NotFound

if TYPE_CHECKING:
    from coherex.store.db import Identity

M = TypeVar("M")

__all__ = ["Repo", "Jsonb"]


class Repo:
    def __init__(self, conn: psycopg.AsyncConnection, identity: Identity):
        self.conn = conn
        self.identity = identity

    async def _one(self, model: type[M], sql: str, params: Any = None) -> M | None:
        async with self.conn.cursor(row_factory=class_row(model)) as cur:
            await self._execute(cur, sql, params)
            return await cur.fetchone()

    async def _all(self, model: type[M], sql: str, params: Any = None) -> list[M]:
        async with self.conn.cursor(row_factory=class_row(model)) as cur:
            await self._execute(cur, sql, params)
            return await cur.fetchall()

    async def _scalar(self, sql: str, params: Any = None) -> Any:
        async with self.conn.cursor() as cur:
            await self._execute(cur, sql, params)
            row = await cur.fetchone()
            return row[0] if row else None

    async def _exec(self, sql: str, params: Any = None) -> int:
        async with self.conn.cursor() as cur:
            await self._execute(cur, sql, params)
            return cur.rowcount

    async def _execute(self, cur: psycopg.AsyncCursor, sql: str, params: Any) -> None:
        # A constraint error aborts the session's transaction: callers that want to go on
        # open a new session.
        try:
            await cur.execute(sql, params)
        except psycopg.errors.UniqueViolation as exc:
            raise Conflict(_unique_message(exc)) from exc
        except psycopg.errors.ForeignKeyViolation as exc:
            raise NotFound(f"A referenced record does not exist ({exc.diag.constraint_name}).") from exc


def _unique_message(exc: psycopg.errors.UniqueViolation) -> str:
    detail = exc.diag.message_detail or ""
    # "Key (team_id, name)=(…, inbox) already exists." → name the field(s) only, never other tenants' ids
    if detail.startswith("Key ("):
        cols = detail[5 : detail.index(")")]
        return f"Something with the same {cols.replace('team_id, ', '')} already exists."
    return "That record already exists."


def require(row: M | None, what: str) -> M:
    if row is None:
        raise NotFound(f"{what} was not found (or you do not have access to it).")
    return row
