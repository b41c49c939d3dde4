-- Row-level security: every tenant row is visible only to members of its team.
--
-- Who may do what (the permission matrix; README "Teams and roles"):
--   viewer  read everything of the team
--   member  + create/change agents, runs, knowledge
--   admin   + data sources, API keys, members, read the audit log
--   owner   + delete the team, change quotas
-- An API key acts as its creator, narrowed to the key's team by the `team_id` claim.
-- `service_role` (workers, migrations, login) bypasses RLS, as on Supabase.

create or replace function coherex_private.role_rank(r text) returns integer
language sql immutable as $$
  select case r when 'owner' then 4 when 'admin' then 3 when 'member' then 2 when 'viewer' then 1 else 0 end
$$;

-- security definer: reads team_members without recursing into its own policies
create or replace function coherex_private.has_team_role(p_team uuid, p_min text default 'viewer')
returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.team_members m
    where m.team_id = p_team
      and m.user_id = auth.uid()
      and coherex_private.role_rank(m.role) >= coherex_private.role_rank(p_min)
      and (auth.jwt() ->> 'team_id' is null or (auth.jwt() ->> 'team_id')::uuid = p_team)
  )
$$;
grant execute on function coherex_private.has_team_role(uuid, text) to authenticated, service_role;
grant execute on function coherex_private.role_rank(text) to authenticated, service_role;

-- Creating a team makes the caller its owner, atomically.
create or replace function public.create_team(p_slug text, p_name text) returns uuid
language plpgsql security definer set search_path = '' as $$
declare new_id uuid;
begin
  if auth.uid() is null then
    raise exception 'create_team needs a signed-in user' using errcode = 'insufficient_privilege';
  end if;
  insert into public.teams (slug, name) values (p_slug, p_name) returning id into new_id;
  insert into public.team_members (team_id, user_id, role) values (new_id, auth.uid(), 'owner');
  return new_id;
end
$$;
revoke execute on function public.create_team(text, text) from public, anon;
grant execute on function public.create_team(text, text) to authenticated, service_role;

-- Usage for quotas is kept by the database itself, so no code path can forget it.
create or replace function coherex_private.track_usage() returns trigger
language plpgsql security definer set search_path = '' as $$
declare month date := date_trunc('month', coalesce(new.created_at, now()))::date;
begin
  if tg_op = 'INSERT' then
    insert into public.usage (team_id, period, executions) values (new.team_id, month, 1)
    on conflict (team_id, period) do update set executions = public.usage.executions + 1;
  elsif new.finished_at is not null and old.finished_at is null then
    insert into public.usage (team_id, period, tokens, cost_usd)
    values (new.team_id, month, new.tokens_in + new.tokens_out, new.cost_usd)
    on conflict (team_id, period) do update
      set tokens = public.usage.tokens + excluded.tokens,
          cost_usd = public.usage.cost_usd + excluded.cost_usd;
  end if;
  return null;
end
$$;
drop trigger if exists track_usage on public.agent_executions;
create trigger track_usage after insert or update on public.agent_executions
  for each row execute function coherex_private.track_usage();

-- ---------------------------------------------------------------- grants
grant select, insert, update, delete on all tables in schema public to authenticated, service_role;
grant usage, select on all sequences in schema public to authenticated, service_role;
alter default privileges in schema public grant select, insert, update, delete on tables to authenticated, service_role;
revoke update, delete, truncate on public.audit_log from authenticated, service_role;
revoke insert, update, delete on public.usage from authenticated;
revoke insert, update, delete on public.teams from authenticated;
grant update on public.teams to authenticated;  -- row policy below limits it to admins

-- ---------------------------------------------------------------- policies
alter table public.profiles enable row level security;
alter table public.teams enable row level security;
alter table public.team_members enable row level security;
alter table public.agents enable row level security;
alter table public.agent_versions enable row level security;
alter table public.data_sources enable row level security;
alter table public.agent_data_sources enable row level security;
alter table public.agent_executions enable row level security;
alter table public.execution_events enable row level security;
alter table public.knowledge_collections enable row level security;
alter table public.knowledge_documents enable row level security;
alter table public.knowledge_chunks enable row level security;
alter table public.api_keys enable row level security;
alter table public.audit_log enable row level security;
alter table public.usage enable row level security;

-- profiles: yourself, and the people you share a team with
drop policy if exists profiles_select on public.profiles;
create policy profiles_select on public.profiles for select to authenticated using (
  id = auth.uid() or exists (
    select 1 from public.team_members m
    where m.user_id = profiles.id and coherex_private.has_team_role(m.team_id, 'viewer')));
drop policy if exists profiles_update on public.profiles;
create policy profiles_update on public.profiles for update to authenticated
  using (id = auth.uid()) with check (id = auth.uid());

-- teams
drop policy if exists teams_select on public.teams;
create policy teams_select on public.teams for select to authenticated
  using (coherex_private.has_team_role(id, 'viewer'));
drop policy if exists teams_update on public.teams;
create policy teams_update on public.teams for update to authenticated
  using (coherex_private.has_team_role(id, 'admin')) with check (coherex_private.has_team_role(id, 'admin'));

-- team members: readable by the team, managed by admins
drop policy if exists team_members_select on public.team_members;
create policy team_members_select on public.team_members for select to authenticated
  using (coherex_private.has_team_role(team_id, 'viewer'));
drop policy if exists team_members_write on public.team_members;
create policy team_members_write on public.team_members for all to authenticated
  using (coherex_private.has_team_role(team_id, 'admin'))
  with check (coherex_private.has_team_role(team_id, 'admin')
              and (role <> 'owner' or coherex_private.has_team_role(team_id, 'owner')));

-- The common shape: the team reads, members write. Admin-only tables get their own below.
do $$
declare t text;
begin
  foreach t in array array['agents', 'agent_versions', 'agent_data_sources', 'agent_executions',
                           'execution_events', 'knowledge_collections', 'knowledge_documents',
                           'knowledge_chunks']
  loop
    execute format('drop policy if exists %I on public.%I', t || '_select', t);
    execute format('create policy %I on public.%I for select to authenticated
                    using (coherex_private.has_team_role(team_id, ''viewer''))', t || '_select', t);
    execute format('drop policy if exists %I on public.%I', t || '_write', t);
    execute format('create policy %I on public.%I for all to authenticated
                    using (coherex_private.has_team_role(team_id, ''member''))
                    with check (coherex_private.has_team_role(team_id, ''member''))', t || '_write', t);
  end loop;
  foreach t in array array['data_sources', 'api_keys']
  loop
    execute format('drop policy if exists %I on public.%I', t || '_select', t);
    execute format('create policy %I on public.%I for select to authenticated
                    using (coherex_private.has_team_role(team_id, ''viewer''))', t || '_select', t);
    execute format('drop policy if exists %I on public.%I', t || '_write', t);
    execute format('create policy %I on public.%I for all to authenticated
                    using (coherex_private.has_team_role(team_id, ''admin''))
                    with check (coherex_private.has_team_role(team_id, ''admin''))', t || '_write', t);
  end loop;
end
$$;

-- Credentials: the ciphertext column is not even readable by the application's user role;
-- integrations decrypt through the service identity, inside the call.
-- (Column privileges only narrow when the table-wide grant is gone, hence revoke then grant.)
revoke select on public.data_sources from authenticated;
grant select (id, team_id, name, type, config, credentials_key_id, status, last_error, failing_since,
              last_checked_at, created_by, created_at, updated_at) on public.data_sources to authenticated;

-- audit log: anyone in the team may append (their own actions); admins read it
drop policy if exists audit_log_select on public.audit_log;
create policy audit_log_select on public.audit_log for select to authenticated
  using (coherex_private.has_team_role(team_id, 'admin'));
drop policy if exists audit_log_insert on public.audit_log;
create policy audit_log_insert on public.audit_log for insert to authenticated
  with check (coherex_private.has_team_role(team_id, 'viewer') and actor_id = auth.uid());

-- usage: read by the team, written by the trigger above
drop policy if exists usage_select on public.usage;
create policy usage_select on public.usage for select to authenticated
  using (coherex_private.has_team_role(team_id, 'viewer'));
