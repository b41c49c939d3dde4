-- Pending OAuth2 authorisations: one row per started flow, consumed once by the callback.
-- Only the platform (service_role) touches it: the PKCE verifier inside is vault ciphertext,
-- and the state is stored as a hash, so a leaked row cannot complete a flow.
create table if not exists public.oauth_states (
  state_hash text primary key,
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid references auth.users (id) on delete cascade,
  provider text not null,
  source_type text not null,
  source_name text not null,
  config jsonb not null default '{}'::jsonb,
  verifier_encrypted text not null,
  redirect_uri text not null,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);
create index if not exists oauth_states_expires_idx on public.oauth_states (expires_at);

alter table public.oauth_states enable row level security;
revoke all on public.oauth_states from authenticated;
grant select, insert, delete on public.oauth_states to service_role;
drop policy if exists oauth_states_service on public.oauth_states;
create policy oauth_states_service on public.oauth_states for all to service_role using (true) with check (true);
