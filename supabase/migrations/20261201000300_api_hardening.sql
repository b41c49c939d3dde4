-- API hardening (issue 16): the audit log cannot be truncated, keys of removed members are revoked,
-- and webhook-started runs count against the API key that created the webhook's secret.

-- ---------------------------------------------------------------- audit log: no TRUNCATE
-- TRUNCATE fires no row or UPDATE/DELETE triggers, and privileges do not bind the table's owner:
-- a statement-level TRUNCATE trigger refuses it for everyone (superusers too).
drop trigger if exists audit_log_no_truncate on public.audit_log;
create trigger audit_log_no_truncate before truncate on public.audit_log
  for each statement execute function coherex_private.audit_log_is_append_only();

-- ---------------------------------------------------------------- keys of removed members
-- A key acts as its creator; once the creator leaves the team the key is revoked (so listings say
-- so, and `api_keys.resolve` refuses it), whoever removed the member and however.
create or replace function coherex_private.revoke_keys_of_removed_member() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.api_keys set revoked_at = now()
   where team_id = old.team_id and user_id = old.user_id and revoked_at is null;
  return null;
end
$$;
drop trigger if exists revoke_keys_of_removed_member on public.team_members;
create trigger revoke_keys_of_removed_member after delete on public.team_members
  for each row execute function coherex_private.revoke_keys_of_removed_member();

-- keys of people removed before this migration
update public.api_keys k set revoked_at = now()
 where k.revoked_at is null
   and not exists (select 1 from public.team_members m where m.team_id = k.team_id and m.user_id = k.user_id);

-- ---------------------------------------------------------------- webhook runs and key quotas
-- The key that made (or rotated) an agent's webhook secret: runs started by that webhook are
-- stamped with it, so the key's quotas (trigger api_key_quota) count them like its API runs.
alter table public.agents add column if not exists webhook_api_key_id uuid
  references public.api_keys (id) on delete set null;
