-- Runs started by MCP clients (/mcp, `coherex mcp serve`) and A2A clients are recorded as such.
alter table public.agent_executions drop constraint if exists agent_executions_trigger_check;
alter table public.agent_executions add constraint agent_executions_trigger_check
  check (trigger in ('manual', 'chat', 'api', 'schedule', 'webhook', 'event', 'cli', 'mcp', 'a2a'));
