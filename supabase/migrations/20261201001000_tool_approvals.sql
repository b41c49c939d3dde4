-- Human approval of tool calls (issue 21). A run whose model asks for a tool call that needs a
-- person's approval pauses durably: the execution goes to `waiting_approval` with the state needed
-- to resume (messages, totals, step, citations) in `resume_state`, no worker and no sandbox, and one
-- `execution_approvals` row per call of that step that waits. A decision by a member (or above) of
-- the agent's team moves the row from `pending` once (a conditional update), and the last decision
-- of the step puts the execution back to `pending` with its queue job in the same transaction.

alter table public.agent_executions drop constraint if exists agent_executions_status_check;
alter table public.agent_executions add constraint agent_executions_status_check
  check (status in ('pending', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled', 'timed_out'));
-- what a paused run resumes from (written by the platform only, read by the worker that resumes it)
alter table public.agent_executions add column if not exists resume_state jsonb;

alter table public.execution_events drop constraint if exists execution_events_type_check;
alter table public.execution_events add constraint execution_events_type_check
  check (type in ('llm_call', 'tool_call', 'tool_result', 'code', 'stdout', 'stderr', 'log', 'error', 'status',
                  'approval_requested', 'approval_decided'));

-- a team may make `approval: writes` the default of tools that declare no approval
alter table public.teams add column if not exists approval_default text not null default 'never'
  check (approval_default in ('never', 'writes'));

create table if not exists public.execution_approvals (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null,
  execution_id uuid not null,
  agent_id uuid not null,
  step integer not null,                       -- the LLM step whose call waits (0-based)
  tool_call_id text not null,
  tool_name text not null,                     -- the name the model called
  tool_use text not null default '',           -- the catalogue tool, e.g. slack.post_message
  arguments jsonb not null default '{}'::jsonb,
  reason text not null default '',             -- what the model said with the call
  status text not null default 'pending'
    check (status in ('pending', 'approved', 'rejected', 'edited', 'expired')),
  decided_by uuid references auth.users (id) on delete set null,
  decided_at timestamptz,
  edited_arguments jsonb,
  message text,                                -- the decider's message (the model reads it on reject)
  expires_at timestamptz not null,
  on_timeout text not null default 'reject' check (on_timeout in ('reject', 'fail')),
  call_started_at timestamptz,                 -- set once, before the approved call runs
  result jsonb,                                -- {text, ok} of that call, once it returned
  created_at timestamptz not null default now(),
  unique (execution_id, step, tool_call_id),
  foreign key (execution_id, team_id) references public.agent_executions (id, team_id) on delete cascade
);
create index if not exists execution_approvals_pending_idx on public.execution_approvals (team_id, created_at)
  where status = 'pending';
create index if not exists execution_approvals_expiry_idx on public.execution_approvals (expires_at)
  where status = 'pending';
create index if not exists execution_approvals_execution_idx on public.execution_approvals (execution_id);

alter table public.execution_approvals enable row level security;
-- the team reads (a personal agent's approvals stay its creator's); members and above decide;
-- only the platform (service_role) creates, expires or records results
drop policy if exists execution_approvals_select on public.execution_approvals;
create policy execution_approvals_select on public.execution_approvals for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[])
         and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])));
drop policy if exists execution_approvals_decide on public.execution_approvals;
create policy execution_approvals_decide on public.execution_approvals for update to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[])
         and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])))
  with check (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[])
              and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])));
revoke insert, update, delete, truncate on public.execution_approvals from authenticated;
grant select on public.execution_approvals to authenticated;
grant update (status, decided_by, decided_at, edited_arguments, message) on public.execution_approvals
  to authenticated;

-- A person decides a pending call once, as themselves, with a decision (never `expired`).
create or replace function coherex_private.approvals_guard() returns trigger
language plpgsql as $$
begin
  if current_user = 'authenticated' then
    if old.status <> 'pending' then
      raise exception 'this approval was already decided (%)', old.status using errcode = 'check_violation';
    end if;
    if new.status = 'expired' and exists (  -- a person stopped the run: its calls will never run
        select 1 from public.agent_executions x where x.id = new.execution_id
        and x.status in ('completed', 'failed', 'cancelled', 'timed_out')) then
      new.decided_by := auth.uid();
      new.decided_at := now();
      return new;
    end if;
    if new.status not in ('approved', 'rejected', 'edited') then
      raise exception 'a decision is approved, rejected or edited' using errcode = 'check_violation';
    end if;
    new.decided_by := auth.uid();
    new.decided_at := now();
  end if;
  return new;
end
$$;
drop trigger if exists approvals_guard on public.execution_approvals;
create trigger approvals_guard before update on public.execution_approvals
  for each row execute function coherex_private.approvals_guard();

-- The dashboard's "Approvals" page (both of its readers call dashboard_* functions): what waits,
-- for whom, since when. Runs as the caller: RLS shows only their teams' rows.
create or replace function public.dashboard_approvals(p_team uuid)
returns table (id uuid, execution_id uuid, agent text, tool text, arguments jsonb, reason text, trigger text,
               started_by text, created_at timestamptz, expires_at timestamptz)
language sql stable set search_path = '' as $$
  select a.id, a.execution_id, g.name, a.tool_name, a.arguments, a.reason, e.trigger, p.email, a.created_at,
         a.expires_at
  from public.execution_approvals a
  join public.agents g on g.id = a.agent_id
  join public.agent_executions e on e.id = a.execution_id
  left join public.profiles p on p.id = e.created_by
  where a.team_id = p_team and a.status = 'pending'
  order by a.created_at, a.tool_call_id
$$;
revoke execute on function public.dashboard_approvals(uuid) from public, anon;
grant execute on function public.dashboard_approvals(uuid) to authenticated, service_role;

-- Optional: where a team hears that a call waits (a Slack data source of the team and a channel),
-- e.g. {"source": "team-slack", "channel": "#approvals"}; null: no notification.
alter table public.teams add column if not exists approval_notify jsonb;
