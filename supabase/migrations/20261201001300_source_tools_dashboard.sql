-- The dashboard shows each data source's tools and when they were last listed (issue 19).
-- The cache itself (data_sources.tools, tools_checked_at) belongs to the tool-provider port; the
-- columns are added here too, `if not exists`, so this migration stands on its own.
alter table public.data_sources add column if not exists tools jsonb;
alter table public.data_sources add column if not exists tools_checked_at timestamptz;
-- readable by members like the other non-secret columns (the table has column grants: see 20261125000300)
grant select (tools, tools_checked_at) on public.data_sources to authenticated;

-- new columns at the end (create or replace view keeps the existing ones in place)
create or replace view public.dashboard_data_sources with (security_invoker = true) as
  select s.id, s.team_id, s.name, s.type, s.status, s.last_error, s.failing_since, s.last_checked_at,
         (select count(*) from public.agent_data_sources g where g.data_source_id = s.id) as agents,
         s.created_at,
         case when jsonb_typeof(s.tools) = 'array' then jsonb_array_length(s.tools) end as tools,
         s.tools_checked_at
  from public.data_sources s;

-- one row per cached tool of a source (RLS of data_sources applies: security_invoker)
create or replace view public.dashboard_source_tools with (security_invoker = true) as
  select s.team_id, s.name as source, s.type, t.value ->> 'name' as tool,
         coalesce(t.value ->> 'access', 'read') as access, t.value ->> 'description' as description,
         s.tools_checked_at, t.ordinality as position
  from public.data_sources s
  cross join lateral jsonb_array_elements(
    case when jsonb_typeof(s.tools) = 'array' then s.tools else '[]'::jsonb end
  ) with ordinality as t(value, ordinality);

revoke all on public.dashboard_source_tools from public, anon, authenticated, service_role;
grant select on public.dashboard_source_tools to authenticated, service_role;
