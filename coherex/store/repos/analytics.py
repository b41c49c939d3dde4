"""What the dashboard reads (aggregates in SQL: `dashboard_*` functions and views of migration
20261125003000) and the bulk writer behind `coherex demo seed`.

Rows come back as plain dicts keyed by column name; `coherex.dashboard.data` turns them into
typed frames, the same way for this SQL reader and for the Supabase (PostgREST) reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg.rows import dict_row

from coherex.store.repos._base import Repo

Row = dict[str, Any]

# the columns each list view exposes (the Supabase reader selects the same ones)
EXECUTION_COLS = (
    "id, agent, agent_version, status, outcome, tool_errors, trigger, tokens_in, tokens_out, cost_usd, "
    "duration_ms, events, error, last_tool_error, started_by, created_at, finished_at"
)
EVENT_COLS = "seq, type, name, parent_seq, tokens_in, tokens_out, cost_usd, duration_ms, payload, created_at"
AGENT_COLS = "id, name, description, status, versions, model, triggers, last_run_at, last_run_status"
VERSION_COLS = "version, message, created_at, spec_yaml"
COLLECTION_COLS = "name, description, embedding_model, documents, chunks, size_bytes"
DOCUMENT_COLS = (
    "collection, title, source, mime_type, status, size_bytes, chunks, chunk_chars, error, created_at"
)
SOURCE_COLS = (
    "name, type, status, last_error, failing_since, last_checked_at, agents, tools, tools_checked_at"
)
SOURCE_TOOL_COLS = "source, type, tool, access, description, tools_checked_at"
AUDIT_COLS = "created_at, actor_kind, actor, action, target_type, target_id, details"
USAGE_COLS = (
    "period, executions, tokens, cost_usd, quota_executions_month, quota_cost_month_usd, max_concurrent_runs"
)


class AnalyticsRepo(Repo):
    async def _rows(self, sql: str, params: Any = None) -> list[Row]:
        async with self.conn.cursor(row_factory=dict_row) as cur:
            await self._execute(cur, sql, params)
            return await cur.fetchall()

    # ------------------------------------------------------------ aggregates (functions)
    async def call(self, function: str, **params: Any) -> list[Row]:
        """`select * from public.<function>(name => value, ...)`: one of the dashboard functions."""
        if not function.startswith("dashboard_") or not function.isidentifier():
            raise ValueError(f"not a dashboard function: {function!r}")
        args = ", ".join(f"{name} => %({name})s" for name in params)
        return await self._rows(f"select * from public.{function}({args})", params)

    # ------------------------------------------------------------ lists (views)
    async def executions(
        self,
        team_id: UUID,
        start: datetime,
        end: datetime,
        agent_ids: Sequence[UUID] | None,
        statuses: Sequence[str] | None,
        limit: int,
    ) -> list[Row]:
        """`statuses` are outcomes: 'completed' leaves out the runs completed with errors."""
        return await self._rows(
            f"select {EXECUTION_COLS} from public.dashboard_executions where team_id = %(t)s "
            "and created_at >= %(a)s and created_at < %(b)s "
            "and (%(agents)s::uuid[] is null or agent_id = any(%(agents)s)) "
            "and (%(st)s::text[] is null or outcome = any(%(st)s)) order by created_at desc, id limit %(n)s",
            {
                "t": team_id,
                "a": start,
                "b": end,
                "agents": list(agent_ids) if agent_ids else None,
                "st": list(statuses) if statuses else None,
                "n": limit,
            },
        )

    async def execution(self, team_id: UUID, execution_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {EXECUTION_COLS} from public.dashboard_executions where team_id = %s and id = %s",
            (team_id, execution_id),
        )

    async def events(self, team_id: UUID, execution_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {EVENT_COLS} from public.execution_events where team_id = %s and execution_id = %s "
            "order by seq",
            (team_id, execution_id),
        )

    async def agents(self, team_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {AGENT_COLS} from public.dashboard_agents where team_id = %s order by name", (team_id,)
        )

    async def versions(self, team_id: UUID, agent_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {VERSION_COLS} from public.agent_versions where team_id = %s and agent_id = %s order "
            "by version",
            (team_id, agent_id),
        )

    async def collections(self, team_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {COLLECTION_COLS} from public.dashboard_collections where team_id = %s order by name",
            (team_id,),
        )

    async def documents(self, team_id: UUID, collection: str) -> list[Row]:
        return await self._rows(
            f"select {DOCUMENT_COLS} from public.dashboard_documents where team_id = %s and collection = %s "
            "order by title, source",
            (team_id, collection),
        )

    async def data_sources(self, team_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {SOURCE_COLS} from public.dashboard_data_sources where team_id = %s order by name",
            (team_id,),
        )

    async def source_tools(self, team_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {SOURCE_TOOL_COLS} from public.dashboard_source_tools where team_id = %s "
            "order by source, position",
            (team_id,),
        )

    async def audit(self, team_id: UUID, limit: int) -> list[Row]:
        return await self._rows(
            f"select {AUDIT_COLS} from public.dashboard_audit where team_id = %s order by created_at desc, "
            "id desc limit %s",
            (team_id, limit),
        )

    async def usage(self, team_id: UUID) -> list[Row]:
        return await self._rows(
            f"select {USAGE_COLS} from public.dashboard_usage where team_id = %s order by period desc",
            (team_id,),
        )


# ---------------------------------------------------------------------------- demo data
# One batch of synthetic executions with their events, all in SQL (generate_series), run by the
# system identity. Executions are inserted unfinished and then finished by an UPDATE so the usage
# trigger counts their tokens and cost exactly as for real runs.
_DEMO_BATCH = """
create temp table demo_runs on commit drop as
select gen_random_uuid() as id, g.i, ag.idx,
       case when g.i <= %(active)s then 'running'
            when g.r2 < ag.fail_p then 'failed'
            when g.r2 < ag.fail_p + 0.012 then 'timed_out'
            when g.r2 < ag.fail_p + 0.02 then 'cancelled'
            else 'completed' end as status,
       case when g.i <= %(active)s then now() - random() * interval '3 minutes'
            else now() - power(g.r3, 1.4) * %(days)s * interval '1 day' end as created_at,
       4 + floor(random() * 13)::int as steps,
       (%(members)s::uuid[])[1 + floor(random() * cardinality(%(members)s::uuid[]))::int] as created_by,
       (array['schedule', 'api', 'chat', 'webhook', 'manual', 'cli'])
         [1 + floor(power(random(), 1.5) * 6)::int]
         as trigger
from (select i, random() as r1, random() as r2, random() as r3 from generate_series(1, %(n)s) i) g
cross join lateral (
  select 1 + floor(power(g.r1, 1.7) * cardinality(%(agents)s::uuid[]))::int as idx) pick
cross join lateral (
  select pick.idx,
         0.02 + 0.16 * (pick.idx - 1) / greatest(cardinality(%(agents)s::uuid[]) - 1, 1) as fail_p) ag;

create temp table demo_events on commit drop as
select r.id as execution_id, s.seq,
       case when s.seq = 1 or s.seq = r.steps then 'status'
            else (array['llm_call', 'tool_call', 'tool_result', 'log'])[1 + (s.seq - 2) %% 4] end as type,
       r.idx, r.created_at, r.status, r.steps
from demo_runs r
cross join lateral generate_series(1, r.steps - case when r.status = 'running' then 3 else 0 end) s(seq);

create temp table demo_events2 on commit drop as
select e.execution_id, e.seq, e.type,
       case e.type when 'llm_call' then (%(models)s::text[])[e.idx]
                   when 'tool_call' then (%(tools)s::text[])[e.idx]
                   when 'tool_result' then (%(tools)s::text[])[e.idx]
                   when 'log' then 'agent'
                   else case when e.seq = 1 then 'running' else e.status end end as name,
       case e.type when 'llm_call' then 250 + floor(random() * 2200)::int else 0 end as tokens_in,
       case e.type when 'llm_call' then 40 + floor(random() * 600)::int else 0 end as tokens_out,
       case e.type when 'llm_call' then 300 + floor(power(random(), 2) * 4500)::int
                   when 'tool_result' then 20 + floor(power(random(), 3) * 6000)::int end as duration_ms,
       e.idx, e.created_at, e.steps
from demo_events e;

insert into public.agent_executions (id, team_id, agent_id, agent_version, status, trigger, inputs, error,
                                     created_by, created_at, started_at, attempts, heartbeat_at, worker_id)
select r.id, %(team)s, (%(agents)s::uuid[])[r.idx],
       1 + floor(random() * (%(versions)s::int[])[r.idx])::int,
       r.status, r.trigger, jsonb_build_object('demo', true, 'n', r.i),
       case r.status
         when 'failed' then (%(errors)s::text[])[1 + floor(random() * cardinality(%(errors)s::text[]))::int]
         when 'timed_out' then 'Stopped: the run took longer than limits.timeoutSeconds.'
         when 'cancelled' then 'Stopped by a person.' end,
       r.created_by, r.created_at, r.created_at + interval '150 milliseconds', 1, r.created_at, 'demo-worker'
from demo_runs r;

insert into public.execution_events (execution_id, team_id, seq, type, name, parent_seq, payload, tokens_in,
                                     tokens_out, cost_usd, duration_ms, created_at)
select e.execution_id, %(team)s, e.seq, e.type, e.name,
       case when e.type in ('tool_call', 'tool_result') then e.seq - 1 end,
       case e.type
         when 'llm_call' then
           jsonb_build_object('content', 'Thinking about step ' || e.seq, 'finish_reason', 'tool_calls')
         when 'tool_call' then jsonb_build_object('arguments', jsonb_build_object('query', 'item ' || e.seq))
         when 'tool_result' then jsonb_build_object('ok', true, 'content', 'result of step ' || e.seq)
         when 'log' then jsonb_build_object('message', 'step ' || e.seq || ' done')
         else jsonb_build_object('status', e.name) end,
       e.tokens_in, e.tokens_out,
       round((e.tokens_in * (%(price_in)s::numeric[])[e.idx]
              + e.tokens_out * (%(price_out)s::numeric[])[e.idx]) / 1000000, 6),
       e.duration_ms,
       e.created_at + e.seq * interval '900 milliseconds'
from demo_events2 e;

update public.agent_executions x
set tokens_in = t.tokens_in, tokens_out = t.tokens_out, cost_usd = t.cost_usd, event_count = t.events,
    duration_ms = case when x.status <> 'running' then t.duration_ms end,
    finished_at = case when x.status <> 'running'
                       then x.created_at + t.duration_ms * interval '1 millisecond' end
from (select execution_id, sum(tokens_in) as tokens_in, sum(tokens_out) as tokens_out,
             sum(cost_usd) as cost_usd,
             count(*) as events, 200 + coalesce(sum(duration_ms), 0) as duration_ms
      from public.execution_events where execution_id in (select id from demo_runs) group by execution_id) t
where x.id = t.execution_id;
"""


class DemoSeedRepo(Repo):
    async def executions_batch(
        self,
        team_id: UUID,
        *,
        n: int,
        active: int,
        days: int,
        agent_ids: Sequence[UUID],
        versions: Sequence[int],
        models: Sequence[str],
        tools: Sequence[str],
        price_in: Sequence[float],
        price_out: Sequence[float],
        member_ids: Sequence[UUID],
        errors: Sequence[str],
    ) -> None:
        """`n` executions (the first `active` still running) spread over the last `days` days."""
        params = {
            "team": team_id,
            "n": n,
            "active": active,
            "days": days,
            "agents": list(agent_ids),
            "versions": list(versions),
            "models": list(models),
            "tools": list(tools),
            "price_in": list(price_in),
            "price_out": list(price_out),
            "members": list(member_ids),
            "errors": list(errors),
        }
        for statement in _DEMO_BATCH.split(";\n\n"):
            await self._exec(statement, params)

    async def set_source_health(
        self, source_id: UUID, status: str, error: str | None, checked: datetime
    ) -> None:
        await self._exec(
            "update public.data_sources set status = %s, last_error = %s, last_checked_at = %s, "
            "failing_since = case when %s = 'failing' then %s - interval '2 hours' end where id = %s",
            (status, error, checked, status, checked, source_id),
        )
