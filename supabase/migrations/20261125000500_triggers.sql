-- Triggers: cron schedules kept per agent (rebuilt when a version is saved), webhook secrets and
-- the deliveries seen (replay protection).

alter table public.agents add column if not exists webhook_secret_encrypted text;  -- vault ciphertext
alter table public.agents add column if not exists webhook_secret_key_id text;

create table if not exists public.agent_schedules (
  agent_id uuid not null,
  team_id uuid not null,
  trigger_index integer not null,       -- position in spec.triggers of the version that made it
  cron text not null,
  timezone text not null,
  next_fire_at timestamptz not null,
  last_fired_at timestamptz,
  primary key (agent_id, trigger_index),
  foreign key (agent_id, team_id) references public.agents (id, team_id) on delete cascade
);
create index if not exists agent_schedules_due_idx on public.agent_schedules (next_fire_at);

create table if not exists public.webhook_deliveries (
  agent_id uuid not null,
  team_id uuid not null,
  delivery_id text not null,
  received_at timestamptz not null default now(),
  primary key (agent_id, delivery_id),
  foreign key (agent_id, team_id) references public.agents (id, team_id) on delete cascade
);

alter table public.agent_schedules enable row level security;
alter table public.webhook_deliveries enable row level security;
grant select, insert, update, delete on public.agent_schedules, public.webhook_deliveries to authenticated, service_role;

drop policy if exists agent_schedules_select on public.agent_schedules;
create policy agent_schedules_select on public.agent_schedules for select to authenticated
  using (coherex_private.has_team_role(team_id, 'viewer'));
drop policy if exists agent_schedules_write on public.agent_schedules;
create policy agent_schedules_write on public.agent_schedules for all to authenticated
  using (coherex_private.has_team_role(team_id, 'member'))
  with check (coherex_private.has_team_role(team_id, 'member'));
drop policy if exists webhook_deliveries_select on public.webhook_deliveries;
create policy webhook_deliveries_select on public.webhook_deliveries for select to authenticated
  using (coherex_private.has_team_role(team_id, 'viewer'));
