-- Who may give an agent's sandbox network access (`spec.runtime.network: true`): a team setting,
-- admins and owners by default. Checked by the database when a version is saved, so every entry
-- point (API, CLI, chat builder, sharing between teams, PostgREST) is covered; a refused save
-- rolls back and stores nothing. Only owners change the setting.

alter table public.teams add column if not exists network_min_role text not null default 'admin'
  check (network_min_role in ('member', 'admin', 'owner'));

create or replace function coherex_private.network_setting_owner_only() returns trigger
language plpgsql as $$
begin
  if current_user = 'authenticated' and new.network_min_role is distinct from old.network_min_role
     and not coherex_private.has_team_role(new.id, 'owner') then
    raise exception 'only an owner of the team can change network_min_role (who may turn sandbox network on)'
      using errcode = 'insufficient_privilege';
  end if;
  return new;
end
$$;
drop trigger if exists network_setting_owner_only on public.teams;
create trigger network_setting_owner_only before update on public.teams
  for each row execute function coherex_private.network_setting_owner_only();

-- (not security definer: current_user must stay the caller's role; the team row is readable by
-- any member, and has_team_role is a definer function of its own)
create or replace function coherex_private.network_needs_role() returns trigger
language plpgsql as $$
declare
  wanted text;
  mine text;
begin
  if current_user = 'authenticated' and (new.spec #> '{spec,runtime,network}') = 'true'::jsonb then
    select t.network_min_role into wanted from public.teams t where t.id = new.team_id;
    if not coherex_private.has_team_role(new.team_id, coalesce(wanted, 'owner')) then
      select m.role into mine from public.team_members m where m.team_id = new.team_id and m.user_id = auth.uid();
      raise exception 'runtime.network: true needs the role % or above in this team (team setting network_min_role); your role is %',
        coalesce(wanted, 'owner'), coalesce(mine, 'none')
        using errcode = 'insufficient_privilege',
              hint = 'Ask an admin to save it, or an owner to change the setting: coherex teams network-role member';
    end if;
  end if;
  return new;
end
$$;
drop trigger if exists network_needs_role on public.agent_versions;
create trigger network_needs_role before insert on public.agent_versions
  for each row execute function coherex_private.network_needs_role();
