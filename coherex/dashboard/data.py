"""The dashboard's one read-only data module, with two implementations chosen by settings:

- `SqlReader` (default): the store's `AnalyticsRepo` over the Postgres connection, every query in a
  transaction under the signed-in person's identity (RLS applies);
- `SupabaseReader` (hosted): the `supabase` client over PostgREST with the person's JWT (RLS is
  applied by PostgREST/Supabase).

Both call the same SQL functions and views (aggregation happens in SQL) and pass their rows through
the same `frame()`, so they return identical frames for the same data.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import pandas as pd

from coherex.store.db import Database, Identity
from coherex.store.repos.analytics import (
    AGENT_COLS,
    AUDIT_COLS,
    COLLECTION_COLS,
    DOCUMENT_COLS,
    EVENT_COLS,
    EXECUTION_COLS,
    SOURCE_COLS,
    SOURCE_TOOL_COLS,
    USAGE_COLS,
    VERSION_COLS,
    AnalyticsRepo,
    Row,
)

T = TypeVar("T")

SUMMARY_COLS = (
    "executions, completed, failed, active, success_rate, duration_p50_ms, duration_p95_ms, cost_usd, "
    "tokens, with_errors"
)
TIMESERIES_COLS = "bucket, status, executions"
COST_COLS = "key, executions, cost_usd, tokens"
FAILING_COLS = "agent, failures, executions, failure_rate, last_error, last_failed_at"
SEARCH_COLS = "title, source, chunk_index, rank, highlight"

_INT = {
    "executions",
    "completed",
    "failed",
    "active",
    "tokens",
    "with_errors",
    "tool_errors",
    "failures",
    "agent_version",
    "tokens_in",
    "tokens_out",
    "duration_ms",
    "events",
    "versions",
    "documents",
    "chunks",
    "size_bytes",
    "chunk_chars",
    "seq",
    "parent_seq",
    "quota_executions_month",
    "max_concurrent_runs",
    "agents",
    "chunk_index",
    "version",
    "tools",
}
_FLOAT = {
    "cost_usd",
    "success_rate",
    "duration_p50_ms",
    "duration_p95_ms",
    "failure_rate",
    "rank",
    "quota_cost_month_usd",
}
_TIME = {
    "bucket",
    "created_at",
    "started_at",
    "finished_at",
    "last_run_at",
    "last_failed_at",
    "failing_since",
    "last_checked_at",
    "tools_checked_at",
}


def frame(rows: Sequence[Row], columns: str) -> pd.DataFrame:
    """Rows → a frame with `columns` in order and one dtype per column name, whichever reader read them
    (psycopg gives Decimal/datetime/UUID, PostgREST gives JSON numbers and ISO strings)."""
    names = [c.strip() for c in columns.split(",")]
    df = pd.DataFrame([{n: r.get(n) for n in names} for r in rows], columns=names)
    for n in names:
        if n in _INT:
            df[n] = pd.array([None if pd.isna(v) else int(v) for v in df[n]], dtype="Int64")
        elif n in _FLOAT:
            df[n] = pd.array([None if pd.isna(v) else float(v) for v in df[n]], dtype="Float64")
        elif n in _TIME:
            df[n] = pd.to_datetime(df[n], utc=True, format="ISO8601")
        elif n == "period":
            df[n] = pd.to_datetime(df[n]).dt.date
        elif n == "id":
            df[n] = df[n].map(str)
    return df


@dataclass(frozen=True)
class Filters:
    """What the sidebar chose: one team, a half-open time range and optionally some agents."""

    team_id: UUID
    start: datetime
    end: datetime
    agent_ids: tuple[UUID, ...] = ()

    def previous(self) -> Filters:
        """The period of the same length just before this one (for the change shown by st.metric)."""
        span = self.end - self.start
        return Filters(self.team_id, self.start - span, self.start, self.agent_ids)

    def params(self) -> dict[str, Any]:
        return {
            "p_team": str(self.team_id),
            "p_from": self.start.isoformat(),
            "p_to": self.end.isoformat(),
            "p_agents": [str(a) for a in self.agent_ids] or None,
        }


class Reader(ABC):
    """Everything the dashboard shows. Aggregates go through `_call` (a `dashboard_*` SQL function)."""

    @abstractmethod
    def _call(self, function: str, params: dict[str, Any]) -> list[Row]: ...

    def summary(self, f: Filters) -> dict[str, Any]:
        return frame(self._call("dashboard_summary", f.params()), SUMMARY_COLS).iloc[0].to_dict()

    def summaries(self, f: Filters) -> tuple[dict[str, Any], dict[str, Any]]:
        """The headline numbers of `f` and of `f.previous()`, in one call (one pass in SQL)."""
        rows = {r["period"]: r for r in self._call("dashboard_summaries", f.params())}
        now, before = (frame([rows[p]], SUMMARY_COLS).iloc[0].to_dict() for p in ("current", "previous"))
        return now, before

    def timeseries(self, f: Filters, bucket: str = "day") -> pd.DataFrame:
        return frame(self._call("dashboard_timeseries", {**f.params(), "p_bucket": bucket}), TIMESERIES_COLS)

    def cost_by(self, f: Filters, dimension: str) -> pd.DataFrame:
        return frame(self._call("dashboard_cost_by", {**f.params(), "p_dimension": dimension}), COST_COLS)

    def top_failing(self, f: Filters, limit: int = 10) -> pd.DataFrame:
        return frame(self._call("dashboard_top_failing", {**f.params(), "p_limit": limit}), FAILING_COLS)

    def search(self, team_id: UUID, collection: str, query: str, k: int = 10) -> pd.DataFrame:
        from coherex.knowledge.search import text_query  # the same query syntax as `kb search`

        params = {"p_team": str(team_id), "p_collection": collection, "p_query": text_query(query), "p_k": k}
        return frame(self._call("dashboard_search_chunks", params), SEARCH_COLS)

    @abstractmethod
    def executions(self, f: Filters, statuses: Sequence[str] = (), limit: int = 200) -> pd.DataFrame: ...

    @abstractmethod
    def execution(self, team_id: UUID, execution_id: UUID) -> dict[str, Any] | None: ...

    @abstractmethod
    def events(self, team_id: UUID, execution_id: UUID) -> pd.DataFrame: ...

    @abstractmethod
    def agents(self, team_id: UUID) -> pd.DataFrame: ...

    @abstractmethod
    def versions(self, team_id: UUID, agent_id: UUID) -> pd.DataFrame: ...

    @abstractmethod
    def collections(self, team_id: UUID) -> pd.DataFrame: ...

    @abstractmethod
    def documents(self, team_id: UUID, collection: str) -> pd.DataFrame: ...

    @abstractmethod
    def data_sources(self, team_id: UUID) -> pd.DataFrame: ...

    @abstractmethod
    def source_tools(self, team_id: UUID) -> pd.DataFrame:
        """Each source's tools as last listed (MCP servers, OpenAPI documents): source, tool, access…"""

    @abstractmethod
    def audit(self, team_id: UUID, limit: int = 500) -> pd.DataFrame: ...

    @abstractmethod
    def usage(self, team_id: UUID) -> pd.DataFrame: ...


# ---------------------------------------------------------------------------- SQL over Postgres
class SyncDatabase:
    """A `Database` driven from synchronous code (Streamlit scripts): its pool lives on one event
    loop in a background thread, shared by every session of the process."""

    def __init__(self, url: str, *, max_size: int = 4):
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="coherex-dashboard-db", daemon=True).start()
        self.db = Database(url, min_size=1, max_size=max_size)
        self.run(self.db.open())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def close(self) -> None:
        self.run(self.db.close())
        self._loop.call_soon_threadsafe(self._loop.stop)


class SqlReader(Reader):
    def __init__(self, database: SyncDatabase, identity: Identity):
        self.database = database
        self.identity = identity

    def _rows(self, method: str, *args: Any, **kwargs: Any) -> list[Row]:
        async def go() -> list[Row]:
            async with self.database.db.session(self.identity) as s:
                return await getattr(AnalyticsRepo(s.conn, self.identity), method)(*args, **kwargs)

        return self.database.run(go())

    def _call(self, function: str, params: dict[str, Any]) -> list[Row]:
        # the same JSON-shaped parameters PostgREST gets; only uuid[] needs typing for psycopg
        if params.get("p_agents"):
            params = {**params, "p_agents": [UUID(a) for a in params["p_agents"]]}
        return self._rows("call", function, **params)

    def search(self, team_id: UUID, collection: str, query: str, k: int = 10) -> pd.DataFrame:
        """Hybrid (vector + full-text) search of the knowledge module, as agents and `kb search` get it."""
        from coherex.knowledge.search import knowledge_search

        hits = self.database.run(
            knowledge_search(self.database.db, self.identity, team_id, collection, query, k)
        )
        return frame(
            [
                {
                    "title": h.title,
                    "source": h.source,
                    "chunk_index": h.metadata.get("chunk_index"),
                    "rank": h.score,
                    "highlight": h.highlight,
                }
                for h in hits
            ],
            SEARCH_COLS,
        )

    def executions(self, f: Filters, statuses: Sequence[str] = (), limit: int = 200) -> pd.DataFrame:
        return frame(
            self._rows("executions", f.team_id, f.start, f.end, f.agent_ids, statuses, limit), EXECUTION_COLS
        )

    def execution(self, team_id: UUID, execution_id: UUID) -> dict[str, Any] | None:
        df = frame(self._rows("execution", team_id, execution_id), EXECUTION_COLS)
        return None if df.empty else df.iloc[0].to_dict()

    def events(self, team_id: UUID, execution_id: UUID) -> pd.DataFrame:
        return frame(self._rows("events", team_id, execution_id), EVENT_COLS)

    def agents(self, team_id: UUID) -> pd.DataFrame:
        return frame(self._rows("agents", team_id), AGENT_COLS)

    def versions(self, team_id: UUID, agent_id: UUID) -> pd.DataFrame:
        return frame(self._rows("versions", team_id, agent_id), VERSION_COLS)

    def collections(self, team_id: UUID) -> pd.DataFrame:
        return frame(self._rows("collections", team_id), COLLECTION_COLS)

    def documents(self, team_id: UUID, collection: str) -> pd.DataFrame:
        return frame(self._rows("documents", team_id, collection), DOCUMENT_COLS)

    def data_sources(self, team_id: UUID) -> pd.DataFrame:
        return frame(self._rows("data_sources", team_id), SOURCE_COLS)

    def source_tools(self, team_id: UUID) -> pd.DataFrame:
        return frame(self._rows("source_tools", team_id), SOURCE_TOOL_COLS)

    def audit(self, team_id: UUID, limit: int = 500) -> pd.DataFrame:
        return frame(self._rows("audit", team_id, limit), AUDIT_COLS)

    def usage(self, team_id: UUID) -> pd.DataFrame:
        return frame(self._rows("usage", team_id), USAGE_COLS)


# ---------------------------------------------------------------------------- Supabase (PostgREST)
class SupabaseReader(Reader):
    """Reads through supabase-py with the person's JWT; PostgREST runs every request as them."""

    def __init__(self, url: str, anon_key: str, access_token: str):
        from supabase import ClientOptions, create_client

        self.client = create_client(
            url, anon_key, ClientOptions(headers={"Authorization": f"Bearer {access_token}"})
        )

    def _call(self, function: str, params: dict[str, Any]) -> list[Row]:
        return self.client.rpc(function, params).execute().data or []

    def _view(self, name: str, columns: str, team_id: UUID):
        return self.client.table(name).select(columns.replace(" ", "")).eq("team_id", str(team_id))

    def executions(self, f: Filters, statuses: Sequence[str] = (), limit: int = 200) -> pd.DataFrame:
        q = (
            self._view("dashboard_executions", EXECUTION_COLS, f.team_id)
            .gte("created_at", f.start.isoformat())
            .lt("created_at", f.end.isoformat())
        )
        if f.agent_ids:
            q = q.in_("agent_id", [str(a) for a in f.agent_ids])
        if statuses:
            q = q.in_("outcome", list(statuses))
        rows = q.order("created_at", desc=True).order("id").limit(limit).execute().data
        return frame(rows, EXECUTION_COLS)

    def execution(self, team_id: UUID, execution_id: UUID) -> dict[str, Any] | None:
        rows = (
            self._view("dashboard_executions", EXECUTION_COLS, team_id)
            .eq("id", str(execution_id))
            .execute()
            .data
        )
        df = frame(rows, EXECUTION_COLS)
        return None if df.empty else df.iloc[0].to_dict()

    def events(self, team_id: UUID, execution_id: UUID) -> pd.DataFrame:
        rows = (
            self._view("execution_events", EVENT_COLS, team_id)
            .eq("execution_id", str(execution_id))
            .order("seq")
            .execute()
            .data
        )
        return frame(rows, EVENT_COLS)

    def agents(self, team_id: UUID) -> pd.DataFrame:
        return frame(
            self._view("dashboard_agents", AGENT_COLS, team_id).order("name").execute().data, AGENT_COLS
        )

    def versions(self, team_id: UUID, agent_id: UUID) -> pd.DataFrame:
        rows = (
            self._view("agent_versions", VERSION_COLS, team_id)
            .eq("agent_id", str(agent_id))
            .order("version")
            .execute()
            .data
        )
        return frame(rows, VERSION_COLS)

    def collections(self, team_id: UUID) -> pd.DataFrame:
        rows = self._view("dashboard_collections", COLLECTION_COLS, team_id).order("name").execute().data
        return frame(rows, COLLECTION_COLS)

    def documents(self, team_id: UUID, collection: str) -> pd.DataFrame:
        rows = (
            self._view("dashboard_documents", DOCUMENT_COLS, team_id)
            .eq("collection", collection)
            .order("title")
            .order("source")
            .execute()
            .data
        )
        return frame(rows, DOCUMENT_COLS)

    def data_sources(self, team_id: UUID) -> pd.DataFrame:
        rows = self._view("dashboard_data_sources", SOURCE_COLS, team_id).order("name").execute().data
        return frame(rows, SOURCE_COLS)

    def source_tools(self, team_id: UUID) -> pd.DataFrame:
        rows = (
            self._view("dashboard_source_tools", SOURCE_TOOL_COLS, team_id)
            .order("source")
            .order("position")
            .execute()
            .data
        )
        return frame(rows, SOURCE_TOOL_COLS)

    def audit(self, team_id: UUID, limit: int = 500) -> pd.DataFrame:
        rows = (
            self._view("dashboard_audit", AUDIT_COLS, team_id)
            .order("created_at", desc=True)
            .order("id", desc=True)
            .limit(limit)
            .execute()
            .data
        )
        return frame(rows, AUDIT_COLS)

    def usage(self, team_id: UUID) -> pd.DataFrame:
        rows = self._view("dashboard_usage", USAGE_COLS, team_id).order("period", desc=True).execute().data
        return frame(rows, USAGE_COLS)
