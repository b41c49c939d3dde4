-- Agents shipped as OCI artifacts (coherex/distribution): where a pulled version came from, the
-- team's registry logins (sealed by the vault) and the team's signature policy.

-- A pulled version records its reference and manifest digest: pulling the same digest again is a
-- no-op, and `coherex agents show` can say where a version came from.
alter table public.agent_versions add column if not exists source_ref text;
alter table public.agent_versions add column if not exists source_digest text
  check (source_digest is null or source_digest ~ '^sha256:[a-f0-9]{64}$');
create index if not exists agent_versions_source_digest on public.agent_versions (team_id, source_digest)
  where source_digest is not null;

-- Registry logins: one per team and registry host. The secret is a vault ciphertext bound to the
-- team (`v1.<key id>.…`); members may use a login (pull, push), only admins add or remove one.
create table if not exists public.registry_credentials (
  team_id uuid not null references public.teams (id) on delete cascade,
  registry text not null check (length(registry) between 1 and 255),
  username text not null check (length(username) between 1 and 255),
  secret_encrypted text not null,
  key_id text not null,
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  primary key (team_id, registry)
);
alter table public.registry_credentials enable row level security;
drop policy if exists registry_credentials_select on public.registry_credentials;
create policy registry_credentials_select on public.registry_credentials for select to authenticated
  using (coherex_private.has_team_role(team_id, 'member'));
drop policy if exists registry_credentials_write on public.registry_credentials;
create policy registry_credentials_write on public.registry_credentials for all to authenticated
  using (coherex_private.has_team_role(team_id, 'admin'))
  with check (coherex_private.has_team_role(team_id, 'admin'));

-- Public keys whose signatures the team trusts (PEM, ECDSA P-256 as cosign makes them), and the
-- team setting that refuses to save a pull without a valid signature from one of them.
create table if not exists public.team_signing_keys (
  team_id uuid not null references public.teams (id) on delete cascade,
  name text not null check (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  public_key text not null check (public_key like '-----BEGIN PUBLIC KEY-----%'),
  created_by uuid references auth.users (id) on delete set null default auth.uid(),
  created_at timestamptz not null default now(),
  primary key (team_id, name)
);
alter table public.team_signing_keys enable row level security;
drop policy if exists team_signing_keys_select on public.team_signing_keys;
create policy team_signing_keys_select on public.team_signing_keys for select to authenticated
  using (coherex_private.has_team_role(team_id, 'viewer'));
drop policy if exists team_signing_keys_write on public.team_signing_keys;
create policy team_signing_keys_write on public.team_signing_keys for all to authenticated
  using (coherex_private.has_team_role(team_id, 'admin'))
  with check (coherex_private.has_team_role(team_id, 'admin'));

-- (teams rows are updated by admins only: the teams_update policy)
alter table public.teams add column if not exists require_signed_pulls boolean not null default false;

grant select, insert, update, delete on public.registry_credentials, public.team_signing_keys
  to authenticated, service_role;
