-- Core tables of Coherex. Every tenant table carries `team_id`; policies are in the next file.

create schema if not exists coherex_private;
grant usage on schema coherex_private to authenticated, service_role;

create or replace function coherex_private.set_updated_at() returns trigger
language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- ---------------------------------------------------------------- teams and people
create table if not exists public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  email text not null unique,
  display_name text not null default '',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.teams (
  id uuid primary key default gen_random_uuid(),
  slug text not null unique check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  name text not null check (length(name) between 1 and 200),
  -- quotas: null means unlimited
  quota_executions_month integer check (quota_executions_month >= 0),
  quota_cost_month_usd numeric(12, 4) check (quota_cost_month_usd >= 0),
  max_concurrent_runs integer check (max_concurrent_runs > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table if not exists public.team_members (
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
  created_at timestamptz not null default now(),
  primary key (team_id, user_id)
);
create index if not exists team_members_user_idx on public.team_members (user_id);

-- ---------------------------------------------------------------- agents and versions
create table if not exists public.agents (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  name text not null check (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  description text not null default '',
  labels jsonb not null default '{}'::jsonb,
  status text not null default 'active' check (status in ('active', 'paused', 'archived')),
  current_version integer not null default 0,
  webhook_secret_hash text,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (team_id, name),
  unique (id, team_id)
);

create table if not exists public.agent_versions (
  id uuid primary key default gen_random_uuid(),
  agent_id uuid not null,
  team_id uuid not null,
  version integer not null check (version >= 1),
  spec jsonb not null,
  spec_yaml text not null,
  checksum text not null,
  message text not null default '',
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  unique (agent_id, version),
  foreign key (agent_id, team_id) references public.agents (id, team_id) on delete cascade
);

-- ---------------------------------------------------------------- data sources
create table if not exists public.data_sources (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  name text not null check (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  type text not null,
  config jsonb not null default '{}'::jsonb,           -- non-secret settings only
  credentials_encrypted text,                          -- vault ciphertext, never plaintext
  credentials_key_id text,                             -- which vault key encrypted it
  status text not null default 'active' check (status in ('active', 'failing', 'disconnected')),
  last_error text,
  failing_since timestamptz,
  last_checked_at timestamptz,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (team_id, name),
  unique (id, team_id)
);

create table if not exists public.agent_data_sources (
  agent_id uuid not null,
  data_source_id uuid not null,
  team_id uuid not null,
  access text not null check (access in ('read', 'write')),
  created_at timestamptz not null default now(),
  primary key (agent_id, data_source_id),
  foreign key (agent_id, team_id) references public.agents (id, team_id) on delete cascade,
  foreign key (data_source_id, team_id) references public.data_sources (id, team_id) on delete cascade
);

-- ---------------------------------------------------------------- executions
create table if not exists public.agent_executions (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null,
  agent_id uuid not null,
  agent_version integer not null,
  status text not null default 'pending'
    check (status in ('pending', 'running', 'completed', 'failed', 'cancelled', 'timed_out')),
  trigger text not null default 'manual'
    check (trigger in ('manual', 'chat', 'api', 'schedule', 'webhook', 'event', 'cli')),
  inputs jsonb not null default '{}'::jsonb,
  output jsonb,
  error text,
  sandbox_id text,
  worker_id text,
  attempts integer not null default 0,
  heartbeat_at timestamptz,
  cancel_requested boolean not null default false,
  event_count integer not null default 0,   -- last event seq; bumping it serialises event writers
  tokens_in integer not null default 0,
  tokens_out integer not null default 0,
  cost_usd numeric(12, 6) not null default 0,
  started_at timestamptz,
  finished_at timestamptz,
  duration_ms integer,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (id, team_id),
  foreign key (agent_id, team_id) references public.agents (id, team_id) on delete cascade
);
create index if not exists agent_executions_team_created_idx on public.agent_executions (team_id, created_at desc);
create index if not exists agent_executions_agent_created_idx on public.agent_executions (agent_id, created_at desc);
create index if not exists agent_executions_active_idx on public.agent_executions (status)
  where status in ('pending', 'running');

create table if not exists public.execution_events (
  id bigint generated always as identity primary key,
  execution_id uuid not null,
  team_id uuid not null,
  seq integer not null,
  type text not null
    check (type in ('llm_call', 'tool_call', 'tool_result', 'code', 'stdout', 'stderr', 'log', 'error', 'status')),
  name text not null default '',
  parent_seq integer,
  payload jsonb not null default '{}'::jsonb,
  tokens_in integer not null default 0,
  tokens_out integer not null default 0,
  cost_usd numeric(12, 6) not null default 0,
  duration_ms integer,
  created_at timestamptz not null default now(),
  unique (execution_id, seq),
  foreign key (execution_id, team_id) references public.agent_executions (id, team_id) on delete cascade
);

-- ---------------------------------------------------------------- knowledge
create table if not exists public.knowledge_collections (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  name text not null check (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  description text not null default '',
  embedding_model text not null default 'all-MiniLM-L6-v2',
  embedding_dim integer not null default 384 check (embedding_dim > 0),
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (team_id, name),
  unique (id, team_id)
);

create table if not exists public.knowledge_documents (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null,
  collection_id uuid not null,
  source text not null,
  title text not null default '',
  mime_type text not null default 'text/plain',
  content_hash text not null,
  size_bytes bigint not null default 0,
  metadata jsonb not null default '{}'::jsonb,
  status text not null default 'pending' check (status in ('pending', 'processing', 'ready', 'failed')),
  error text,
  chunk_count integer not null default 0,
  created_by uuid references auth.users (id) on delete set null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (collection_id, content_hash),
  unique (id, team_id),
  foreign key (collection_id, team_id) references public.knowledge_collections (id, team_id) on delete cascade
);

-- The embedding column has no fixed dimension so one table serves collections of any model;
-- each supported dimension gets its own partial HNSW index on a typed cast (pgvector's way).
create table if not exists public.knowledge_chunks (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null,
  collection_id uuid not null,
  document_id uuid not null,
  chunk_index integer not null,
  content text not null,
  content_hash text not null,
  metadata jsonb not null default '{}'::jsonb,
  embedding extensions.vector,
  embedding_dim integer,
  tsv tsvector generated always as (to_tsvector('english', content)) stored,
  created_at timestamptz not null default now(),
  unique (document_id, chunk_index),
  foreign key (document_id, team_id) references public.knowledge_documents (id, team_id) on delete cascade,
  check (embedding is null or extensions.vector_dims(embedding) = embedding_dim)
);
create index if not exists knowledge_chunks_collection_idx on public.knowledge_chunks (collection_id);
create index if not exists knowledge_chunks_tsv_idx on public.knowledge_chunks using gin (tsv);
create index if not exists knowledge_chunks_embedding_384_idx on public.knowledge_chunks
  using hnsw ((embedding::extensions.vector(384)) extensions.vector_cosine_ops) where embedding_dim = 384;
create index if not exists knowledge_chunks_embedding_1536_idx on public.knowledge_chunks
  using hnsw ((embedding::extensions.vector(1536)) extensions.vector_cosine_ops) where embedding_dim = 1536;

-- ---------------------------------------------------------------- api keys, audit, usage
create table if not exists public.api_keys (
  id uuid primary key default gen_random_uuid(),
  team_id uuid not null references public.teams (id) on delete cascade,
  name text not null,
  prefix text not null,                 -- first characters, shown to people to tell keys apart
  key_hash text not null unique,        -- sha256 of the whole key; the key itself is never stored
  user_id uuid not null references auth.users (id) on delete cascade,
  scopes text[] not null default '{}',
  last_used_at timestamptz,
  expires_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz not null default now()
);
create index if not exists api_keys_team_idx on public.api_keys (team_id);

create table if not exists public.audit_log (
  id bigint generated always as identity primary key,
  team_id uuid,                         -- no foreign key: the record outlives a deleted team
  actor_id uuid,
  actor_kind text not null default 'user' check (actor_kind in ('user', 'api_key', 'system', 'agent')),
  action text not null,
  target_type text not null default '',
  target_id text not null default '',
  details jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now()
);
create index if not exists audit_log_team_created_idx on public.audit_log (team_id, created_at desc);

create table if not exists public.usage (
  team_id uuid not null references public.teams (id) on delete cascade,
  period date not null,                 -- first day of the month
  executions integer not null default 0,
  tokens bigint not null default 0,
  cost_usd numeric(14, 6) not null default 0,
  primary key (team_id, period)
);

-- ---------------------------------------------------------------- triggers
do $$
declare t text;
begin
  foreach t in array array['profiles', 'teams', 'agents', 'data_sources', 'agent_executions',
                           'knowledge_collections', 'knowledge_documents']
  loop
    execute format('drop trigger if exists set_updated_at on public.%I', t);
    execute format('create trigger set_updated_at before update on public.%I
                    for each row execute function coherex_private.set_updated_at()', t);
  end loop;
end
$$;

-- Listeners (chat, dashboard, `coherex logs -f`) follow these channels. Payloads carry ids only:
-- a listener reads the row itself, under its own identity, so RLS still decides what it sees.
create or replace function coherex_private.notify_execution() returns trigger
language plpgsql as $$
begin
  if tg_op = 'INSERT' or new.status is distinct from old.status or new.cancel_requested is distinct from old.cancel_requested then
    perform pg_notify('coherex_executions', json_build_object(
      'id', new.id, 'team_id', new.team_id, 'agent_id', new.agent_id, 'status', new.status,
      'cancel_requested', new.cancel_requested)::text);
  end if;
  return null;
end
$$;
drop trigger if exists notify_execution on public.agent_executions;
create trigger notify_execution after insert or update on public.agent_executions
  for each row execute function coherex_private.notify_execution();

create or replace function coherex_private.notify_event() returns trigger
language plpgsql as $$
begin
  perform pg_notify('coherex_events', json_build_object(
    'execution_id', new.execution_id, 'team_id', new.team_id, 'seq', new.seq, 'type', new.type)::text);
  return null;
end
$$;
drop trigger if exists notify_event on public.execution_events;
create trigger notify_event after insert on public.execution_events
  for each row execute function coherex_private.notify_event();

-- The audit log is append-only for everyone but the table owner (and even then a trigger refuses).
create or replace function coherex_private.audit_log_is_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'audit_log is append-only' using errcode = 'insufficient_privilege';
end
$$;
drop trigger if exists audit_log_append_only on public.audit_log;
create trigger audit_log_append_only before update or delete on public.audit_log
  for each statement execute function coherex_private.audit_log_is_append_only();
