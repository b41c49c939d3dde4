-- The steps of a personal agent's runs are as private as the runs: teammates saw no execution
-- rows of someone else's personal agent, but its execution_events (LLM calls, tool calls, output)
-- were still readable by the whole team, because events are filtered by team only.
--
-- Events get the agent's id (set by the database from the run, so no code path can forget it)
-- and the same policy as agent_executions: one array lookup per row, no join.

alter table public.execution_events add column if not exists agent_id uuid;

create or replace function coherex_private.set_event_agent_id() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  select x.agent_id into new.agent_id from public.agent_executions x where x.id = new.execution_id;
  return new;
end
$$;
revoke execute on function coherex_private.set_event_agent_id() from public;

drop trigger if exists set_event_agent_id on public.execution_events;
create trigger set_event_agent_id before insert on public.execution_events
  for each row execute function coherex_private.set_event_agent_id();

-- the rollup triggers fire on update; this changes no column they read
update public.execution_events ev set agent_id = x.agent_id
  from public.agent_executions x
  where x.id = ev.execution_id and ev.agent_id is distinct from x.agent_id;
alter table public.execution_events alter column agent_id set not null;

drop policy if exists execution_events_select on public.execution_events;
create policy execution_events_select on public.execution_events for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[])
         and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])));
drop policy if exists execution_events_write on public.execution_events;
create policy execution_events_write on public.execution_events for all to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[])
         and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])))
  with check (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[])
              and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])));
