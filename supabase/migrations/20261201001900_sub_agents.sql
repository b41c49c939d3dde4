-- Sub-agents: an agent calls another agent as a tool. The call is an execution of its own, linked
-- to its parent (and to the parent's tool step), run inside the parent's run by the same worker.
alter table public.agent_executions
  add column if not exists parent_execution_id uuid references public.agent_executions (id) on delete cascade,
  add column if not exists parent_event_seq integer,
  add column if not exists depth integer not null default 0;
create index if not exists agent_executions_parent_idx
  on public.agent_executions (parent_execution_id) where parent_execution_id is not null;

-- The callee versions a saved version calls (tool name -> {agent_id, version}), pinned when the
-- caller's version was saved: a caller never changes under its own feet.
alter table public.agent_versions
  add column if not exists sub_agents jsonb not null default '{}'::jsonb;

-- A child runs inside its parent's run and has no job of its own: the orphan sweep leaves it alone
-- (its parent's retry starts a new child).
create or replace function coherex_private.queue_orphaned_executions(p_grace_seconds double precision)
returns setof uuid
language plpgsql security definer set search_path = '' as $$
declare
  orphan uuid;
begin
  for orphan in
    select e.id from public.agent_executions e
    where e.status = 'pending' and e.parent_execution_id is null
      and e.updated_at < now() - make_interval(secs => p_grace_seconds)
      and not exists (select 1 from public.procrastinate_jobs j
                      where j.queueing_lock = e.id::text and j.status in ('todo', 'doing'))
    order by e.created_at
    limit 500
    for update of e skip locked
  loop
    if coherex_private.queue_execution(orphan) then
      return next orphan;
    end if;
  end loop;
end
$$;
revoke execute on function coherex_private.queue_orphaned_executions(double precision) from public;
grant execute on function coherex_private.queue_orphaned_executions(double precision) to service_role;

alter table public.agent_executions drop constraint if exists agent_executions_trigger_check;
alter table public.agent_executions add constraint agent_executions_trigger_check
  check (trigger in ('manual', 'chat', 'api', 'schedule', 'webhook', 'event', 'cli', 'mcp', 'a2a', 'agent'));
