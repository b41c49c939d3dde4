-- Dashboard speed at 100k executions / 1M events (bench/bench_dashboard.py).
--
-- 1. Cost by model. The model that answered is only in the LLM-call events, so the aggregate joined
--    every `llm_call` event of the period (~1.9 s at 1M events). `execution_model_usage` is a rollup:
--    one row per (execution, model) with its calls, tokens and cost, carrying the execution's
--    `agent_id` and `created_at` so the dashboard filters it without a join. The database keeps it
--    (statement triggers on execution_events, the way `usage` is kept) so no code path — the
--    runtime, `coherex demo seed`, a bulk import — can forget it, and it is exact while a run is
--    still going. The events stay the source of truth; the rollup equals
--      select execution_id, name, count(*), sum(tokens_in), sum(tokens_out), sum(cost_usd)
--      from execution_events where type = 'llm_call' group by 1, 2
--    at every commit (tests/integration/dashboard checks it).
-- 2. Headline numbers of the period and of the previous one in one call (`dashboard_summaries`).
-- 3. Cost by agent / member without materialising every run of the period first, and a covering
--    index so the aggregates over agent_executions are index-only scans.

-- ---------------------------------------------------------------- rollup table
create table if not exists public.execution_model_usage (
  execution_id uuid not null,
  team_id uuid not null,
  agent_id uuid not null,
  execution_created_at timestamptz not null,
  model text not null,
  llm_calls integer not null default 0,
  tokens_in bigint not null default 0,
  tokens_out bigint not null default 0,
  cost_usd numeric(14, 6) not null default 0,
  primary key (execution_id, model),
  foreign key (execution_id, team_id) references public.agent_executions (id, team_id) on delete cascade
);
create index if not exists execution_model_usage_team_created_idx
  on public.execution_model_usage (team_id, execution_created_at)
  include (agent_id, model, execution_id, tokens_in, tokens_out, cost_usd);

alter table public.execution_model_usage enable row level security;
drop policy if exists execution_model_usage_select on public.execution_model_usage;
-- the same rule as agent_executions: the team's rows, minus the runs of other people's personal agents
create policy execution_model_usage_select on public.execution_model_usage for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[])
         and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])));
-- written only by the triggers below (security definer), read by the team
revoke all on public.execution_model_usage from public, anon, authenticated, service_role;
grant select on public.execution_model_usage to authenticated, service_role;

-- ---------------------------------------------------------------- kept by the database
-- Adds the LLM calls of the inserted rows and subtracts those of the deleted ones (an UPDATE is
-- both), per statement, so a bulk insert of events costs one grouped upsert.
create or replace function coherex_private.rollup_model_usage() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_op in ('UPDATE', 'DELETE') then
    insert into public.execution_model_usage as u
      (execution_id, team_id, agent_id, execution_created_at, model, llm_calls, tokens_in, tokens_out, cost_usd)
    select x.id, x.team_id, x.agent_id, x.created_at, o.name,
           -count(*), -sum(o.tokens_in), -sum(o.tokens_out), -sum(o.cost_usd)
    from old_events o join public.agent_executions x on x.id = o.execution_id
    where o.type = 'llm_call'
    group by x.id, o.name
    on conflict (execution_id, model) do update
      set llm_calls = u.llm_calls + excluded.llm_calls, tokens_in = u.tokens_in + excluded.tokens_in,
          tokens_out = u.tokens_out + excluded.tokens_out, cost_usd = u.cost_usd + excluded.cost_usd;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    insert into public.execution_model_usage as u
      (execution_id, team_id, agent_id, execution_created_at, model, llm_calls, tokens_in, tokens_out, cost_usd)
    select x.id, x.team_id, x.agent_id, x.created_at, n.name,
           count(*), sum(n.tokens_in), sum(n.tokens_out), sum(n.cost_usd)
    from new_events n join public.agent_executions x on x.id = n.execution_id
    where n.type = 'llm_call'
    group by x.id, n.name
    on conflict (execution_id, model) do update
      set llm_calls = u.llm_calls + excluded.llm_calls, tokens_in = u.tokens_in + excluded.tokens_in,
          tokens_out = u.tokens_out + excluded.tokens_out, cost_usd = u.cost_usd + excluded.cost_usd;
  end if;
  if tg_op in ('UPDATE', 'DELETE') then
    delete from public.execution_model_usage u
    where u.llm_calls <= 0 and u.execution_id in (select o.execution_id from old_events o);
  end if;
  return null;
end
$$;
revoke execute on function coherex_private.rollup_model_usage() from public;

-- the trigger takes its lock on execution_events before the backfill reads it: no event is missed
drop trigger if exists rollup_model_usage_insert on public.execution_events;
create trigger rollup_model_usage_insert after insert on public.execution_events
  referencing new table as new_events for each statement execute function coherex_private.rollup_model_usage();
drop trigger if exists rollup_model_usage_update on public.execution_events;
create trigger rollup_model_usage_update after update on public.execution_events
  referencing old table as old_events new table as new_events
  for each statement execute function coherex_private.rollup_model_usage();
drop trigger if exists rollup_model_usage_delete on public.execution_events;
create trigger rollup_model_usage_delete after delete on public.execution_events
  referencing old table as old_events for each statement execute function coherex_private.rollup_model_usage();

-- events written before this migration
insert into public.execution_model_usage
  (execution_id, team_id, agent_id, execution_created_at, model, llm_calls, tokens_in, tokens_out, cost_usd)
select x.id, x.team_id, x.agent_id, x.created_at, ev.name,
       count(*), sum(ev.tokens_in), sum(ev.tokens_out), sum(ev.cost_usd)
from public.execution_events ev join public.agent_executions x on x.id = ev.execution_id
where ev.type = 'llm_call'
group by x.id, ev.name
on conflict (execution_id, model) do nothing;

-- the join it served is gone; one index less to write per event
drop index if exists public.execution_events_llm_calls_idx;

-- Every aggregate of agent_executions reads one team's period: with what they read in the index
-- (and the RLS columns team_id, agent_id) it is an index-only scan, ~2x faster than the heap.
-- It replaces the plain (team_id, created_at desc) index: same key, so the lists still use it.
create index if not exists agent_executions_team_created_cover_idx on public.agent_executions (team_id, created_at desc)
  include (agent_id, status, created_by, duration_ms, cost_usd, tokens_in, tokens_out);
drop index if exists public.agent_executions_team_created_idx;

-- ---------------------------------------------------------------- aggregates
-- Cost and tokens by 'agent', 'member' (who started the run) or 'model' (of each LLM call; an
-- execution that used two models counts once under each). Each dimension reads only what it needs:
-- the branches not asked for are cut by their one-time filter before they scan anything.
create or replace function public.dashboard_cost_by(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null, p_dimension text default 'agent')
returns table (key text, executions bigint, cost_usd numeric, tokens bigint)
language sql stable set search_path = '' as $$
  select a.name, x.executions, x.cost_usd, x.tokens
  from (select e.agent_id, count(*) as executions, sum(e.cost_usd) as cost_usd,
               sum(e.tokens_in + e.tokens_out)::bigint as tokens
        from public.agent_executions e
        where p_dimension = 'agent' and e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
          and (p_agents is null or e.agent_id = any (p_agents))
        group by e.agent_id) x
  join public.agents a on a.id = x.agent_id
  union all
  select coalesce(p.email, '(unknown)'), x.executions, x.cost_usd, x.tokens
  from (select e.created_by, count(*) as executions, sum(e.cost_usd) as cost_usd,
               sum(e.tokens_in + e.tokens_out)::bigint as tokens
        from public.agent_executions e
        where p_dimension = 'member' and e.team_id = p_team and e.created_at >= p_from and e.created_at < p_to
          and (p_agents is null or e.agent_id = any (p_agents))
        group by e.created_by) x
  left join public.profiles p on p.id = x.created_by
  union all
  select u.model, count(*), sum(u.cost_usd), sum(u.tokens_in + u.tokens_out)::bigint
  from public.execution_model_usage u
  where p_dimension = 'model' and u.team_id = p_team and u.execution_created_at >= p_from
    and u.execution_created_at < p_to and (p_agents is null or u.agent_id = any (p_agents))
  group by u.model
  order by 3 desc, 1
$$;

-- The headline numbers of the period ('current') and of the period of the same length just
-- before it ('previous', for the change shown next to each number) in one call: each period is its
-- own index range (one pass with per-period FILTERs measured 2x slower). The previous period is
-- shifted by the exact length in seconds (not by calendar days, whose length would depend on the
-- session's time zone).
create or replace function public.dashboard_summaries(
  p_team uuid, p_from timestamptz, p_to timestamptz, p_agents uuid[] default null)
returns table (period text, executions bigint, completed bigint, failed bigint, active bigint,
               success_rate double precision, duration_p50_ms double precision, duration_p95_ms double precision,
               cost_usd numeric, tokens bigint)
language sql stable set search_path = '' as $$
  select p.period, s.*
  from (values ('current', p_from, p_to),
               ('previous', p_from - make_interval(secs => extract(epoch from p_to) - extract(epoch from p_from)),
                p_from)) p(period, lo, hi)
  cross join lateral (
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
    where e.team_id = p_team and e.created_at >= p.lo and e.created_at < p.hi
      and (p_agents is null or e.agent_id = any (p_agents))) s
$$;
revoke execute on function public.dashboard_summaries(uuid, timestamptz, timestamptz, uuid[]) from public, anon;
grant execute on function public.dashboard_summaries(uuid, timestamptz, timestamptz, uuid[]) to authenticated, service_role;
