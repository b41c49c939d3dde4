-- Scheduled knowledge syncs: a collection kept in step with a data source every N minutes.

create table if not exists public.knowledge_syncs (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  source_name text not null,
  collection text not null,
  options jsonb not null default '{}'::jsonb,     -- repo/path (GitHub) or channel (Slack)
  every_minutes integer not null check (every_minutes between 5 and 10080),
  next_at timestamptz not null default now(),
  last_run_at timestamptz,
  last_error text,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  unique (team_id, source_name, collection)
);
create index if not exists knowledge_syncs_due_idx on public.knowledge_syncs (next_at);

alter table public.knowledge_syncs enable row level security;
grant select, insert, update, delete on public.knowledge_syncs to authenticated, service_role;
drop policy if exists knowledge_syncs_select on public.knowledge_syncs;
create policy knowledge_syncs_select on public.knowledge_syncs for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[]));
drop policy if exists knowledge_syncs_write on public.knowledge_syncs;
create policy knowledge_syncs_write on public.knowledge_syncs for all to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[]))
  with check (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[]));
