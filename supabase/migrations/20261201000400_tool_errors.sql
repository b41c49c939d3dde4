-- Honest outcomes: a run whose tool calls failed and whose answer came after a failure nothing
-- fixed is not a plain success.
--
-- tool_errors      how many tool calls of the run failed (a Python call that raised, an integration
--                  that refused, a tool the model made up, ...)
-- last_tool_error  the error of the run's last tool call, or null when that call succeeded
-- outcome          status, except 'completed_with_errors' for a completed run whose last tool call
--                  failed: the agent answered after a failure it did not recover from (no later
--                  tool call succeeded). One place for that rule: the chat, `coherex ps/logs` and the
--                  dashboard's success rate all read this column.
-- Both counters are kept by ExecutionRepo.add_event, in the statement that numbers the event.

alter table public.agent_executions add column if not exists tool_errors integer not null default 0;
alter table public.agent_executions add column if not exists last_tool_error text;
alter table public.agent_executions add column if not exists outcome text
  generated always as (case when status = 'completed' and last_tool_error is not null
                            then 'completed_with_errors' else status end) stored;

-- The list view shows the outcome and the tool errors next to the status.
create or replace view public.dashboard_executions with (security_invoker = true) as
  select e.id, e.team_id, e.agent_id, a.name as agent, e.agent_version, e.status, e.trigger,
         e.tokens_in, e.tokens_out, e.cost_usd, e.duration_ms, e.event_count as events, e.error,
         p.email as started_by, e.created_at, e.started_at, e.finished_at,
         e.outcome, e.tool_errors, e.last_tool_error
  from public.agent_executions e
  join public.agents a on a.id = e.agent_id
  left join public.profiles p on p.id = e.created_by;

-- Headline numbers: success_rate = plain successes / finished runs; runs completed with errors are
-- counted apart (with_errors) and are not successes.
drop function if exists public.dashboard_summaries(uuid, timestamptz, timestamptz, uuid[]);
create function public.dashboard_summaries(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null)
returns table (period text, executions bigint, completed bigint, failed bigint, active bigint,
               success_rate double precision, duration_p50_ms double precision, duration_p95_ms double precision,
               cost_usd numeric, tokens bigint, with_errors bigint)
language sql stable set search_path = '' as $$
  select p.period, s.*
  from (values ('current', p_from, p_to),
               ('previous', p_from - make_interval(secs => extract(epoch from p_to) - extract(epoch from p_from)),
                p_from)) p(period, lo, hi)
  cross join lateral (
    select count(*),
           count(*) filter (where e.outcome = 'completed'),
           count(*) filter (where e.status in ('failed', 'timed_out')),
           count(*) filter (where e.status in ('pending', 'running')),
           (count(*) filter (where e.outcome = 'completed'))::double precision
             / nullif(count(*) filter (where e.status not in ('pending', 'running')), 0),
           percentile_cont(0.5) within group (order by e.duration_ms),
           percentile_cont(0.95) within group (order by e.duration_ms),
           coalesce(sum(e.cost_usd), 0),
           coalesce(sum(e.tokens_in + e.tokens_out), 0)::bigint,
           count(*) filter (where e.outcome = 'completed_with_errors')
    from public.agent_executions e
    where e.team_id = p_team and e.created_at >= p.lo and e.created_at < p.hi
      and (p_agents is null or e.agent_id = any (p_agents))) s
$$;
revoke execute on function public.dashboard_summaries(uuid, timestamptz, timestamptz, uuid[]) from public, anon;
grant execute on function public.dashboard_summaries(uuid, timestamptz, timestamptz, uuid[]) to authenticated, service_role;

drop function if exists public.dashboard_summary(uuid, timestamptz, timestamptz, uuid[]);
create function public.dashboard_summary(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null)
returns table (executions bigint, completed bigint, failed bigint, active bigint, success_rate double precision,
               duration_p50_ms double precision, duration_p95_ms double precision, cost_usd numeric, tokens bigint,
               with_errors bigint)
language sql stable set search_path = '' as $$
  select s.executions, s.completed, s.failed, s.active, s.success_rate, s.duration_p50_ms, s.duration_p95_ms,
         s.cost_usd, s.tokens, s.with_errors
  from public.dashboard_summaries(p_team, p_from, p_to, p_agents) s where s.period = 'current'
$$;
revoke execute on function public.dashboard_summary(uuid, timestamptz, timestamptz, uuid[]) from public, anon;
grant execute on function public.dashboard_summary(uuid, timestamptz, timestamptz, uuid[]) to authenticated, service_role;

-- Executions per bucket and outcome (a run completed with errors is its own bar colour).
create or replace function public.dashboard_timeseries(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null, p_bucket text default 'day')
returns table (bucket timestamptz, status text, executions bigint)
language sql stable set search_path = '' as $$
  select date_trunc(p_bucket, e.created_at, 'UTC'), e.outcome, count(*)
  from public.agent_executions e
  where e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
    and (p_agents is null or e.agent_id = any (p_agents))
  group by 1, 2
  order by 1, 2
$$;

-- Failing agents: failed, timed out, or completed with errors (with the last tool error as reason).
create or replace function public.dashboard_top_failing(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null, p_limit integer default 10)
returns table (agent text, failures bigint, executions bigint, failure_rate double precision,
               last_error text, last_failed_at timestamptz)
language sql stable set search_path = '' as $$
  with per_agent as (
    select e.agent_id, count(*) as executions,
           count(*) filter (where e.outcome in ('failed', 'timed_out', 'completed_with_errors')) as failures
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
    select coalesce(f.error, 'completed with errors: ' || f.last_tool_error) as error, f.created_at
    from public.agent_executions f
    where f.team_id = p_team and f.agent_id = pa.agent_id
      and f.outcome in ('failed', 'timed_out', 'completed_with_errors')
      and f.created_at >= p_from and f.created_at < p_to
    order by f.created_at desc limit 1) last
  where pa.failures > 0
  order by pa.failures desc, a.name
  limit p_limit
$$;

-- An agent whose last run completed with errors says so on the Agents page.
create or replace view public.dashboard_agents with (security_invoker = true) as
  select a.id, a.team_id, a.name, a.description, a.status, a.current_version as versions,
         coalesce(v.spec #>> '{spec,model,name}', '') as model,
         coalesce((select string_agg(kind, ', ' order by kind)
                   from jsonb_array_elements(coalesce(v.spec #> '{spec,triggers}', '[]'::jsonb)) t,
                        jsonb_object_keys(t) kind), '') as triggers,
         last.created_at as last_run_at, last.outcome as last_run_status, a.updated_at
  from public.agents a
  left join public.agent_versions v on v.agent_id = a.id and v.version = a.current_version
  left join lateral (
    select e.created_at, e.outcome from public.agent_executions e
    where e.agent_id = a.id order by e.created_at desc limit 1) last on true;
