-- Teams and roles, part 2: personal agents, invitations, owner-only quotas, API-key quotas, and
-- audit rows written by the database itself for role changes, credential changes and logins.
--
-- The permission matrix (enforced by the policies of ..._rls_policies.sql and this file):
--
--   action                                         viewer  member  admin  owner
--   read the team's agents, runs, knowledge         yes     yes     yes    yes
--   read a teammate's *personal* agent              no      no      no     no   (only its creator)
--   create / change / delete agents, run them       no      yes     yes    yes
--   read data sources' metadata (never ciphertext)  yes     yes     yes    yes
--   connect / change / remove data sources          no      no      yes    yes
--   create / revoke API keys                        no      no      yes    yes
--   invite people, change roles, remove members     no      no      yes    yes  (only an owner makes owners)
--   read the audit log                              no      no      yes    yes
--   change the team's quotas and API-key quotas     no      no      no     yes
--
-- `service_role` (workers, webhook receiver, login) bypasses RLS, as on Supabase.

-- ---------------------------------------------------------------- personal agents
alter table public.agents add column if not exists visibility text not null default 'team'
  check (visibility in ('team', 'personal'));

-- Ids of personal agents of other people in my teams: an InitPlan, usually an empty array, so the
-- per-row cost on big tables (executions) stays one array lookup.
create or replace function coherex_private.hidden_agent_ids() returns uuid[]
language sql stable security definer set search_path = '' as $$
  select coalesce(array_agg(a.id), '{}')
  from public.agents a
  where a.visibility = 'personal'
    and a.created_by is distinct from auth.uid()
    and a.team_id = any (coherex_private.my_team_ids('viewer'))
$$;
revoke execute on function coherex_private.hidden_agent_ids() from public;
grant execute on function coherex_private.hidden_agent_ids() to authenticated, service_role;

drop policy if exists agents_select on public.agents;
create policy agents_select on public.agents for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[])
         and (visibility = 'team' or created_by = (select auth.uid())));
drop policy if exists agents_write on public.agents;
create policy agents_write on public.agents for all to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[])
         and (visibility = 'team' or created_by = (select auth.uid())))
  with check (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[])
              and (visibility = 'team' or created_by = (select auth.uid())));

-- what hangs off an agent is hidden with it
do $$
declare t text;
begin
  foreach t in array array['agent_versions', 'agent_data_sources', 'agent_executions', 'agent_schedules']
  loop
    execute format('drop policy if exists %I on public.%I', t || '_select', t);
    execute format('create policy %I on public.%I for select to authenticated
                    using (team_id = any ((select coherex_private.my_team_ids(''viewer''))::uuid[])
                           and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])))',
                   t || '_select', t);
    execute format('drop policy if exists %I on public.%I', t || '_write', t);
    execute format('create policy %I on public.%I for all to authenticated
                    using (team_id = any ((select coherex_private.my_team_ids(''member''))::uuid[])
                           and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])))
                    with check (team_id = any ((select coherex_private.my_team_ids(''member''))::uuid[])
                                and not (agent_id = any ((select coherex_private.hidden_agent_ids())::uuid[])))',
                   t || '_write', t);
  end loop;
end
$$;

-- Nobody but the platform re-assigns who created an agent (else a member could take a team agent
-- and make it personal, hiding it from the team).
create or replace function coherex_private.agents_guard() returns trigger
language plpgsql as $$
begin
  if new.created_by is distinct from old.created_by and current_user = 'authenticated' then
    raise exception 'the creator of an agent cannot be changed' using errcode = 'insufficient_privilege';
  end if;
  if new.visibility = 'personal' and old.visibility = 'team' and current_user = 'authenticated'
     and new.created_by is distinct from auth.uid() then
    raise exception 'only the creator of an agent can make it personal' using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
drop trigger if exists agents_guard on public.agents;
create trigger agents_guard before update on public.agents
  for each row execute function coherex_private.agents_guard();

-- ---------------------------------------------------------------- quotas: owners only
alter table public.api_keys add column if not exists quota_executions_month integer
  check (quota_executions_month >= 0);
alter table public.api_keys add column if not exists quota_cost_month_usd numeric(12, 4)
  check (quota_cost_month_usd >= 0);
alter table public.api_keys add column if not exists max_concurrent_runs integer
  check (max_concurrent_runs > 0);
alter table public.agent_executions add column if not exists api_key_id uuid
  references public.api_keys (id) on delete set null;
create index if not exists agent_executions_api_key_idx on public.agent_executions (api_key_id, created_at)
  where api_key_id is not null;

-- (teams has `id`, api_keys has `team_id`: one small function per table keeps it plain)
create or replace function coherex_private.team_quotas_owner_only() returns trigger
language plpgsql as $$
begin
  if current_user = 'authenticated'
     and (new.quota_executions_month is distinct from old.quota_executions_month
          or new.quota_cost_month_usd is distinct from old.quota_cost_month_usd
          or new.max_concurrent_runs is distinct from old.max_concurrent_runs)
     and not coherex_private.has_team_role(new.id, 'owner') then
    raise exception 'only an owner of the team can change its quotas' using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
drop trigger if exists team_quotas_owner_only on public.teams;
create trigger team_quotas_owner_only before update on public.teams
  for each row execute function coherex_private.team_quotas_owner_only();

create or replace function coherex_private.key_quotas_owner_only() returns trigger
language plpgsql as $$
begin
  if current_user = 'authenticated'
     and (tg_op = 'INSERT' and (new.quota_executions_month is not null or new.quota_cost_month_usd is not null
                                or new.max_concurrent_runs is not null)
          or tg_op = 'UPDATE' and (new.quota_executions_month is distinct from old.quota_executions_month
                                   or new.quota_cost_month_usd is distinct from old.quota_cost_month_usd
                                   or new.max_concurrent_runs is distinct from old.max_concurrent_runs))
     and not coherex_private.has_team_role(new.team_id, 'owner') then
    raise exception 'only an owner of the team can change API-key quotas' using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
drop trigger if exists key_quotas_owner_only on public.api_keys;
create trigger key_quotas_owner_only before insert or update on public.api_keys
  for each row execute function coherex_private.key_quotas_owner_only();

-- An execution asked for with an API key (claim `key_id`) is stamped with it and counted against
-- the key's quotas. Checked by the database, so every entry point that uses a key is covered.
create or replace function coherex_private.api_key_quota() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  k public.api_keys%rowtype;
  claim text := auth.jwt() ->> 'key_id';
  used integer;
  spent numeric;
  going integer;
  month timestamptz := date_trunc('month', now());
begin
  if new.api_key_id is null and claim is not null and claim <> '' then
    new.api_key_id := claim::uuid;
  end if;
  if new.api_key_id is null then
    return new;
  end if;
  select * into k from public.api_keys where id = new.api_key_id;
  if not found then
    new.api_key_id := null;
    return new;
  end if;
  if k.quota_executions_month is not null then
    select count(*) into used from public.agent_executions
      where api_key_id = k.id and created_at >= month;
    if used >= k.quota_executions_month then
      raise exception 'API key % has used its % executions for this month', k.name, k.quota_executions_month
        using errcode = 'insufficient_privilege', hint = 'An owner can raise it: coherex teams quota --key';
    end if;
  end if;
  if k.quota_cost_month_usd is not null then
    select coalesce(sum(cost_usd), 0) into spent from public.agent_executions
      where api_key_id = k.id and created_at >= month;
    if spent >= k.quota_cost_month_usd then
      raise exception 'API key % has spent $% of its $% monthly budget', k.name, round(spent, 2),
        k.quota_cost_month_usd using errcode = 'insufficient_privilege';
    end if;
  end if;
  if k.max_concurrent_runs is not null then
    select count(*) into going from public.agent_executions
      where api_key_id = k.id and status in ('pending', 'running');
    if going >= k.max_concurrent_runs then
      raise exception 'API key % already has % runs going (its limit)', k.name, going
        using errcode = 'insufficient_privilege';
    end if;
  end if;
  return new;
end
$$;
drop trigger if exists api_key_quota on public.agent_executions;
create trigger api_key_quota before insert on public.agent_executions
  for each row execute function coherex_private.api_key_quota();

-- ---------------------------------------------------------------- invitations
create table if not exists public.team_invitations (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  email text not null check (email ~ '^[^@\s]+@[^@\s]+$'),
  role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
  token_hash text not null unique,      -- sha256 of the token; the token itself is never stored
  invited_by uuid references auth.users (id) on delete set null,
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now()
);
create index if not exists team_invitations_team_idx on public.team_invitations (team_id, created_at desc);
alter table public.team_invitations enable row level security;
grant select, insert, delete on public.team_invitations to authenticated;
grant all on public.team_invitations to service_role;
revoke update on public.team_invitations from authenticated;  -- accepting goes through accept_invitation()

drop policy if exists team_invitations_select on public.team_invitations;
create policy team_invitations_select on public.team_invitations for select to authenticated
  using (coherex_private.has_team_role(team_id, 'admin'));
drop policy if exists team_invitations_insert on public.team_invitations;
create policy team_invitations_insert on public.team_invitations for insert to authenticated
  with check (coherex_private.has_team_role(team_id, 'admin') and invited_by = auth.uid()
              and (role <> 'owner' or coherex_private.has_team_role(team_id, 'owner')));
drop policy if exists team_invitations_delete on public.team_invitations;
create policy team_invitations_delete on public.team_invitations for delete to authenticated
  using (coherex_private.has_team_role(team_id, 'admin') and accepted_at is null);

-- Accept: the token (hashed here), not expired, not used, for the caller's email. Single use.
create or replace function public.accept_invitation(p_token text) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  inv public.team_invitations%rowtype;
  me text;
begin
  if auth.uid() is null then
    raise exception 'accepting an invitation needs a signed-in user' using errcode = 'insufficient_privilege';
  end if;
  select email into me from public.profiles where id = auth.uid();
  update public.team_invitations
     set accepted_at = now(), accepted_by = auth.uid()
   where token_hash = encode(sha256(convert_to(p_token, 'UTF8')), 'hex')
     and accepted_at is null and expires_at > now() and lower(email) = lower(me)
  returning * into inv;
  if not found then
    raise exception 'this invitation is not valid (unknown, used, expired, or for another email address)'
      using errcode = 'insufficient_privilege';
  end if;
  insert into public.team_members (team_id, user_id, role) values (inv.team_id, auth.uid(), inv.role)
  on conflict (team_id, user_id) do update set role = excluded.role
    where coherex_private.role_rank(excluded.role) > coherex_private.role_rank(public.team_members.role);
  insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
  values (inv.team_id, auth.uid(), 'user', 'invitation.accept', 'invitation', inv.id::text,
          jsonb_build_object('email', inv.email, 'role', inv.role));
  return inv.team_id;
end
$$;
revoke execute on function public.accept_invitation(text) from public, anon;
grant execute on function public.accept_invitation(text) to authenticated, service_role;

-- ---------------------------------------------------------------- audit rows kept by the database
-- Role changes: every insert/update/delete of a membership, whoever made it (CLI, invitation, SQL).
create or replace function coherex_private.audit_membership() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  actor uuid := auth.uid();
  kind text := case when auth.uid() is null then 'system' else 'user' end;
begin
  if tg_op = 'INSERT' then
    insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
    values (new.team_id, actor, kind, 'member.add', 'user', new.user_id::text, jsonb_build_object('role', new.role));
  elsif tg_op = 'UPDATE' and new.role is distinct from old.role then
    insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
    values (new.team_id, actor, kind, 'member.role_change', 'user', new.user_id::text,
            jsonb_build_object('from', old.role, 'to', new.role));
  elsif tg_op = 'DELETE' then
    insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
    values (old.team_id, actor, kind, 'member.remove', 'user', old.user_id::text, jsonb_build_object('role', old.role));
  end if;
  return null;
end
$$;
drop trigger if exists audit_membership on public.team_members;
create trigger audit_membership after insert or update or delete on public.team_members
  for each row execute function coherex_private.audit_membership();

-- The last owner cannot leave or be demoted: a team always has someone who can change quotas.
create or replace function coherex_private.keep_an_owner() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if old.role = 'owner' and (tg_op = 'DELETE' or new.role <> 'owner')
     and exists (select 1 from public.teams where id = old.team_id)
     and not exists (select 1 from public.team_members
                     where team_id = old.team_id and role = 'owner' and user_id <> old.user_id) then
    raise exception 'a team needs at least one owner' using errcode = 'check_violation';
  end if;
  return coalesce(new, old);
end
$$;
drop trigger if exists keep_an_owner on public.team_members;
create trigger keep_an_owner before update or delete on public.team_members
  for each row execute function coherex_private.keep_an_owner();

-- Admins cannot demote or remove owners (only owners can).
drop policy if exists team_members_write on public.team_members;
create policy team_members_write on public.team_members for all to authenticated
  using (coherex_private.has_team_role(team_id, 'admin')
         and (role <> 'owner' or coherex_private.has_team_role(team_id, 'owner')))
  with check (coherex_private.has_team_role(team_id, 'admin')
              and (role <> 'owner' or coherex_private.has_team_role(team_id, 'owner')));

-- Quota and credential changes on existing rows.
create or replace function coherex_private.audit_changes() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  actor uuid := auth.uid();
  kind text := case when auth.uid() is null then 'system' else 'user' end;
begin
  if tg_table_name = 'teams' then
    if (new.quota_executions_month, new.quota_cost_month_usd, new.max_concurrent_runs)
       is distinct from (old.quota_executions_month, old.quota_cost_month_usd, old.max_concurrent_runs) then
      insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
      values (new.id, actor, kind, 'team.quota_change', 'team', new.id::text, jsonb_build_object(
        'executions_month', new.quota_executions_month, 'cost_month_usd', new.quota_cost_month_usd,
        'max_concurrent_runs', new.max_concurrent_runs));
    end if;
  elsif tg_table_name = 'api_keys' then
    if (new.quota_executions_month, new.quota_cost_month_usd, new.max_concurrent_runs)
       is distinct from (old.quota_executions_month, old.quota_cost_month_usd, old.max_concurrent_runs) then
      insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
      values (new.team_id, actor, kind, 'api_key.quota_change', 'api_key', new.id::text, jsonb_build_object(
        'name', new.name, 'executions_month', new.quota_executions_month,
        'cost_month_usd', new.quota_cost_month_usd, 'max_concurrent_runs', new.max_concurrent_runs));
    end if;
  elsif tg_table_name = 'data_sources' then
    if new.credentials_encrypted is distinct from old.credentials_encrypted
       or new.config is distinct from old.config then
      insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
      values (new.team_id, actor, kind,
              case when new.credentials_encrypted is distinct from old.credentials_encrypted
                   then 'data_source.credentials_change' else 'data_source.config_change' end,
              'data_source', new.id::text, jsonb_build_object('name', new.name, 'key_id', new.credentials_key_id));
    end if;
  end if;
  return null;
end
$$;
drop trigger if exists audit_changes on public.teams;
create trigger audit_changes after update on public.teams
  for each row execute function coherex_private.audit_changes();
drop trigger if exists audit_changes on public.api_keys;
create trigger audit_changes after update on public.api_keys
  for each row execute function coherex_private.audit_changes();
drop trigger if exists audit_changes on public.data_sources;
create trigger audit_changes after update on public.data_sources
  for each row execute function coherex_private.audit_changes();

-- Logins (embedded auth): one row per team of the user, or a team-less row; failures too.
create or replace function coherex_private.record_login(p_email text, p_user uuid, p_ok boolean) returns void
language plpgsql security definer set search_path = '' as $$
begin
  insert into public.audit_log (team_id, actor_id, actor_kind, action, target_type, target_id, details)
  select m.team_id, p_user, 'user', case when p_ok then 'login' else 'login.failed' end, 'user',
         coalesce(p_user::text, ''), jsonb_build_object('email', p_email)
  from public.team_members m where p_user is not null and m.user_id = p_user
  union all
  select null, p_user, 'user', case when p_ok then 'login' else 'login.failed' end, 'user',
         coalesce(p_user::text, ''), jsonb_build_object('email', p_email)
  where p_user is null or not exists (select 1 from public.team_members m where m.user_id = p_user);
end
$$;
revoke execute on function coherex_private.record_login(text, uuid, boolean) from public;
grant execute on function coherex_private.record_login(text, uuid, boolean) to service_role;
