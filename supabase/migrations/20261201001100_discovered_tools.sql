-- Tools discovered per data source (MCP servers, OpenAPI documents): the tool list the source
-- offered at its last check, as ToolInfo objects ({name, description, access, parameters}), and
-- when it was read. Refreshed by `coherex sources check` and by maintenance on a schedule.
-- Same rows, so the data_sources policies (team members read, admins write) cover them; the
-- application role reads columns one by one (credentials stay hidden), so the new ones are granted.
alter table public.data_sources add column if not exists tools jsonb;
alter table public.data_sources add column if not exists tools_checked_at timestamptz;
grant select (tools, tools_checked_at) on public.data_sources to authenticated;
