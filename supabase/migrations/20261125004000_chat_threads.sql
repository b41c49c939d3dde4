-- Chat threads (the Chainlit data layer of `coherex.chat.data_layer`): conversations, their steps
-- (messages, builder tool calls, run steps), elements (YAML cards, charts) and feedback.
--
-- A thread belongs to one person in one team and is private to that person: not even an admin
-- of the team reads it. Steps, elements and feedback repeat the thread's team_id and user_id so
-- each row is checked on its own, without a join per row.

create table if not exists public.chat_threads (
  id uuid primary key,
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  name text,
  metadata jsonb not null default '{}',
  tags text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists chat_threads_user_idx on public.chat_threads (user_id, updated_at desc);

create table if not exists public.chat_steps (
  id uuid primary key,
  thread_id uuid not null references public.chat_threads (id) on delete cascade,
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  parent_id uuid,
  type text not null,
  name text not null default '',
  -- the whole step as Chainlit sends it (input, output, metadata, timings, language, ...)
  data jsonb not null default '{}',
  created_at timestamptz not null default clock_timestamp()
);
create index if not exists chat_steps_thread_idx on public.chat_steps (thread_id, created_at);

create table if not exists public.chat_elements (
  id uuid primary key,
  thread_id uuid not null references public.chat_threads (id) on delete cascade,
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  for_id uuid,
  data jsonb not null default '{}',
  -- small elements only (a YAML card, a chart); larger ones keep their metadata without content
  content bytea check (octet_length(content) <= 5242880),
  created_at timestamptz not null default now()
);
create index if not exists chat_elements_thread_idx on public.chat_elements (thread_id);

create table if not exists public.chat_feedback (
  id uuid primary key default gen_random_uuid(),
  step_id uuid not null references public.chat_steps (id) on delete cascade,
  thread_id uuid not null references public.chat_threads (id) on delete cascade,
  team_id uuid not null references public.teams (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  value integer not null check (value in (0, 1)),
  comment text,
  created_at timestamptz not null default now(),
  unique (step_id)
);

do $$
declare t text;
begin
  foreach t in array array['chat_threads', 'chat_steps', 'chat_elements', 'chat_feedback']
  loop
    execute format('alter table public.%I enable row level security', t);
    execute format('grant select, insert, update, delete on public.%I to authenticated, service_role', t);
    execute format('drop policy if exists %I on public.%I', t || '_own', t);
    -- yours, in a team you still belong to
    execute format('create policy %I on public.%I for all to authenticated
                    using (user_id = (select auth.uid())
                           and team_id = any ((select coherex_private.my_team_ids(''viewer''))::uuid[]))
                    with check (user_id = (select auth.uid())
                                and team_id = any ((select coherex_private.my_team_ids(''viewer''))::uuid[]))',
                   t || '_own', t);
  end loop;
end
$$;
