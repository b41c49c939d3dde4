-- Large knowledge uploads wait here for a worker, which ingests them and reports progress.
-- The bytes are dropped once the document is ingested (or failed): the row stays as a record.

create table if not exists public.knowledge_uploads (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  collection text not null,
  filename text not null,
  size_bytes bigint not null,
  data bytea,
  status text not null default 'queued' check (status in ('queued', 'processing', 'done', 'failed')),
  stage text not null default '',
  done integer not null default 0,
  total integer not null default 0,
  error text,
  document_id uuid,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists knowledge_uploads_team_idx on public.knowledge_uploads (team_id, created_at desc);

drop trigger if exists set_updated_at on public.knowledge_uploads;
create trigger set_updated_at before update on public.knowledge_uploads
  for each row execute function coherex_private.set_updated_at();

alter table public.knowledge_uploads enable row level security;
grant select, insert, update, delete on public.knowledge_uploads to authenticated, service_role;

drop policy if exists knowledge_uploads_select on public.knowledge_uploads;
create policy knowledge_uploads_select on public.knowledge_uploads for select to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('viewer'))::uuid[]));
drop policy if exists knowledge_uploads_write on public.knowledge_uploads;
create policy knowledge_uploads_write on public.knowledge_uploads for all to authenticated
  using (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[]))
  with check (team_id = any ((select coherex_private.my_team_ids('member'))::uuid[]));
