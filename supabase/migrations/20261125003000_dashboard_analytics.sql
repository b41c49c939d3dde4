-- What the dashboard reads: aggregate functions and list views, the same for the SQL reader
-- (psycopg under the user's identity) and the Supabase reader (supabase-py → PostgREST `rpc` and
-- `from_`). Functions are SECURITY INVOKER and views `security_invoker = true`, so the caller's
-- row-level security decides what is counted: a person only ever aggregates their teams' rows.
-- Time buckets are computed in UTC so both readers (whatever their session time zone) agree.

-- ---------------------------------------------------------------- cheaper row-level security
-- The team policies called `has_team_role(team_id, …)` once per row: ~12 µs a row, so 1M events
-- cost seconds to aggregate. The same rule written as `team_id = any ((select my_team_ids(…)))`
-- is evaluated once per statement (an InitPlan, Supabase's recommended form) and then costs one
-- array lookup a row. Who may see or write what is unchanged.
create or replace function coherex_private.my_team_ids(p_min text default 'viewer') returns uuid[]
language sql stable security definer set search_path = '' as $$
  select coalesce(array_agg(m.team_id), '{}')
  from public.team_members m
  where m.user_id = auth.uid()
    and coherex_private.role_rank(m.role) >= coherex_private.role_rank(p_min)
    and (auth.jwt() ->> 'team_id' is null or (auth.jwt() ->> 'team_id')::uuid = m.team_id)
$$;
revoke execute on function coherex_private.my_team_ids(text) from public;
grant execute on function coherex_private.my_team_ids(text) to authenticated, service_role;

do $$
declare t text;
begin
  foreach t in array array['agents', 'agent_versions', 'agent_data_sources', 'agent_executions',
                           'execution_events', 'knowledge_collections', 'knowledge_documents',
                           'knowledge_chunks']
  loop
    execute format('drop policy if exists %I on public.%I', t || '_select', t);
    execute format('create policy %I on public.%I for select to authenticated
                    using (team_id = any ((select coherex_private.my_team_ids(''viewer''))::uuid[]))', t || '_select', t);
    execute format('drop policy if exists %I on public.%I', t || '_write', t);
    execute format('create policy %I on public.%I for all to authenticated
                    using (team_id = any ((select coherex_private.my_team_ids(''member''))::uuid[]))
                    with check (team_id = any ((select coherex_private.my_team_ids(''member''))::uuid[]))', t || '_write', t);
  end loop;
end
$$;
drop policy if exists usage_select on public.usage;
create policy usage_select on public.usage for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[]));

-- ---------------------------------------------------------------- indexes for the aggregates
-- cost and tokens by model come from the LLM-call events (the model actually answered)
create index if not exists execution_events_llm_calls_idx on public.execution_events (execution_id)
  include (name, tokens_in, tokens_out, cost_usd) where type = 'llm_call';
create index if not exists agent_executions_failed_idx on public.agent_executions (team_id, agent_id, created_at desc)
  where status in ('failed', 'timed_out');

-- ---------------------------------------------------------------- aggregates
-- Headline numbers of one period. success_rate = completed / finished (pending and running
-- executions have no outcome yet); durations are of finished executions.
create or replace function public.dashboard_summary(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null)
returns table (executions bigint, completed bigint, failed bigint, active bigint, success_rate double precision,
               duration_p50_ms double precision, duration_p95_ms double precision, cost_usd numeric, tokens bigint)
language sql stable set search_path = '' as $$
  select count(*),
         count(*) filter (where e.status = 'completed'),
         count(*) filter (where e.status in ('failed', 'timed_out')),
         count(*) filter (where e.status in ('pending', 'running')),
         (count(*) filter (where e.status = 'completed'))::double precision
           / nullif(count(*) filter (where e.status not in ('pending', 'running')), 0),
         percentile_cont(0.5) within group (order by e.duration_ms),
         percentile_cont(0.95) within group (order by e.duration_ms),
         coalesce(sum(e.cost_usd), 0),
         coalesce(sum(e.tokens_in + e.tokens_out), 0)::bigint
  from public.agent_executions e
  where e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
    and (p_agents is null or e.agent_id = any (p_agents))
$$;

-- Executions per time bucket ('hour', 'day', 'week') and status.
create or replace function public.dashboard_timeseries(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null, p_bucket text default 'day')
returns table (bucket timestamptz, status text, executions bigint)
language sql stable set search_path = '' as $$
  select date_trunc(p_bucket, e.created_at, 'UTC'), e.status, count(*)
  from public.agent_executions e
  where e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
    and (p_agents is null or e.agent_id = any (p_agents))
  group by 1, 2
  order by 1, 2
$$;

-- Cost and tokens by 'agent', 'member' (who started the run) or 'model' (of each LLM call).
create or replace function public.dashboard_cost_by(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null, p_dimension text default 'agent')
returns table (key text, executions bigint, cost_usd numeric, tokens bigint)
language sql stable set search_path = '' as $$
  with runs as (
    select e.id, e.agent_id, e.created_by, e.cost_usd, e.tokens_in + e.tokens_out as tokens
    from public.agent_executions e
    where e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
      and (p_agents is null or e.agent_id = any (p_agents))
  )
  select a.name, x.executions, x.cost_usd, x.tokens
  from (select r.agent_id, count(*) as executions, sum(r.cost_usd) as cost_usd, sum(r.tokens)::bigint as tokens
        from runs r where p_dimension = 'agent' group by r.agent_id) x
  join public.agents a on a.id = x.agent_id
  union all
  select coalesce(p.email, '(unknown)'), x.executions, x.cost_usd, x.tokens
  from (select r.created_by, count(*) as executions, sum(r.cost_usd) as cost_usd, sum(r.tokens)::bigint as tokens
        from runs r where p_dimension = 'member' group by r.created_by) x
  left join public.profiles p on p.id = x.created_by
  union all
  select ev.name, count(distinct ev.execution_id), sum(ev.cost_usd), sum(ev.tokens_in + ev.tokens_out)::bigint
  from runs r join public.execution_events ev on ev.execution_id = r.id and ev.type = 'llm_call'
  where p_dimension = 'model' group by ev.name
  order by 3 desc, 1
$$;

-- Agents with the most failed or timed-out runs in the period, with their latest error.
create or replace function public.dashboard_top_failing(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null, p_limit integer default 10)
returns table (agent text, failures bigint, executions bigint, failure_rate double precision,
               last_error text, last_failed_at timestamptz)
language sql stable set search_path = '' as $$
  with per_agent as (
    select e.agent_id, count(*) as executions,
           count(*) filter (where e.status in ('failed', 'timed_out')) as failures
    from public.agent_executions e
    where e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
      and (p_agents is null or e.agent_id = any (p_agents))
    group by e.agent_id
  )
  select a.name, pa.failures, pa.executions, pa.failures::double precision / pa.executions,
         last.error, last.created_at
  from per_agent pa
  join public.agents a on a.id = pa.agent_id
  cross join lateral (
    select f.error, f.created_at from public.agent_executions f
    where f.team_id = p_team and f.agent_id = pa.agent_id and f.status in ('failed', 'timed_out')
      and f.created_at >= p_from and f.created_at < p_to
    order by f.created_at desc limit 1) last
  where pa.failures > 0
  order by pa.failures desc, a.name
  limit p_limit
$$;

-- Full-text search over a collection's chunks, ranked, matching words wrapped in **…**.
create or replace function public.dashboard_search_chunks(
  p_team uuid, p_collection text, p_query text, p_k integer default 10)
returns table (title text, source text, chunk_index integer, rank real, highlight text)
language sql stable set search_path = '' as $$
  with q as (select websearch_to_tsquery('english', p_query) as tsq)
  select d.title, d.source, c.chunk_index, ts_rank(c.tsv, q.tsq),
         ts_headline('english', c.content, q.tsq, 'StartSel=**, StopSel=**, MaxFragments=2, MaxWords=30, MinWords=10')
  from q, public.knowledge_chunks c
  join public.knowledge_collections k on k.id = c.collection_id
  join public.knowledge_documents d on d.id = c.document_id
  where k.team_id = p_team and k.name = p_collection and c.tsv @@ q.tsq
  order by 4 desc, d.title, c.chunk_index
  limit p_k
$$;

revoke execute on function public.dashboard_summary(uuid, timestamptz, timestamptz, uuid[]) from public, anon;
revoke execute on function public.dashboard_timeseries(uuid, timestamptz, timestamptz, uuid[], text) from public, anon;
revoke execute on function public.dashboard_cost_by(uuid, timestamptz, timestamptz, uuid[], text) from public, anon;
revoke execute on function public.dashboard_top_failing(uuid, timestamptz, timestamptz, uuid[], integer) from public, anon;
revoke execute on function public.dashboard_search_chunks(uuid, text, text, integer) from public, anon;
grant execute on function public.dashboard_summary(uuid, timestamptz, timestamptz, uuid[]) to authenticated, service_role;
grant execute on function public.dashboard_timeseries(uuid, timestamptz, timestamptz, uuid[], text) to authenticated, service_role;
grant execute on function public.dashboard_cost_by(uuid, timestamptz, timestamptz, uuid[], text) to authenticated, service_role;
grant execute on function public.dashboard_top_failing(uuid, timestamptz, timestamptz, uuid[], integer) to authenticated, service_role;
grant execute on function public.dashboard_search_chunks(uuid, text, text, integer) to authenticated, service_role;

-- ---------------------------------------------------------------- list views
create or replace view public.dashboard_executions with (security_invoker = true) as
  select e.id, e.team_id, e.agent_id, a.name as agent, e.agent_version, e.status, e.trigger,
         e.tokens_in, e.tokens_out, e.cost_usd, e.duration_ms, e.event_count as events, e.error,
         p.email as started_by, e.created_at, e.started_at, e.finished_at
  from public.agent_executions e
  join public.agents a on a.id = e.agent_id
  left join public.profiles p on p.id = e.created_by;

create or replace view public.dashboard_agents with (security_invoker = true) as
  select a.id, a.team_id, a.name, a.description, a.status, a.current_version as versions,
         coalesce(v.spec #>> '{spec,model,name}', '') as model,
         coalesce((select string_agg(kind, ', ' order by kind)
                   from jsonb_array_elements(coalesce(v.spec #> '{spec,triggers}', '[]'::jsonb)) t,
                        jsonb_object_keys(t) kind), '') as triggers,
         last.created_at as last_run_at, last.status as last_run_status, a.updated_at
  from public.agents a
  left join public.agent_versions v on v.agent_id = a.id and v.version = a.current_version
  left join lateral (
    select e.created_at, e.status from public.agent_executions e
    where e.agent_id = a.id order by e.created_at desc limit 1) last on true;

create or replace view public.dashboard_collections with (security_invoker = true) as
  select c.id, c.team_id, c.name, c.description, c.embedding_model,
         (select count(*) from public.knowledge_documents d where d.collection_id = c.id) as documents,
         (select count(*) from public.knowledge_chunks k where k.collection_id = c.id) as chunks,
         (select coalesce(sum(d.size_bytes), 0) from public.knowledge_documents d
          where d.collection_id = c.id)::bigint as size_bytes
  from public.knowledge_collections c;

create or replace view public.dashboard_documents with (security_invoker = true) as
  select d.id, d.team_id, c.name as collection, d.title, d.source, d.mime_type, d.status, d.size_bytes,
         (select count(*) from public.knowledge_chunks k where k.document_id = d.id) as chunks,
         (select coalesce(sum(length(k.content)), 0) from public.knowledge_chunks k
          where k.document_id = d.id)::bigint as chunk_chars,
         d.error, d.created_at
  from public.knowledge_documents d
  join public.knowledge_collections c on c.id = d.collection_id;

create or replace view public.dashboard_data_sources with (security_invoker = true) as
  select s.id, s.team_id, s.name, s.type, s.status, s.last_error, s.failing_since, s.last_checked_at,
         (select count(*) from public.agent_data_sources g where g.data_source_id = s.id) as agents,
         s.created_at
  from public.data_sources s;

create or replace view public.dashboard_audit with (security_invoker = true) as
  select l.id, l.team_id, l.created_at, l.actor_kind, coalesce(p.email, l.actor_id::text, '') as actor,
         l.action, l.target_type, l.target_id, l.details::text as details
  from public.audit_log l
  left join public.profiles p on p.id = l.actor_id;

create or replace view public.dashboard_usage with (security_invoker = true) as
  select u.team_id, u.period, u.executions, u.tokens, u.cost_usd,
         t.quota_executions_month, t.quota_cost_month_usd, t.max_concurrent_runs
  from public.usage u
  join public.teams t on t.id = u.team_id;

do $$
declare v text;
begin
  foreach v in array array['dashboard_executions', 'dashboard_agents', 'dashboard_collections',
                           'dashboard_documents', 'dashboard_data_sources', 'dashboard_audit', 'dashboard_usage']
  loop
    execute format('revoke all on public.%I from public, anon, authenticated, service_role', v);
    execute format('grant select on public.%I to authenticated, service_role', v);
  end loop;
end
$$;
