-- Pending OAuth flows are platform-internal: keep them out of the `public` schema, which
-- PostgREST exposes and which tenant-table checks enumerate. Only service_role may touch them.
alter table if exists public.oauth_states set schema coherex_private;
revoke all on coherex_private.oauth_states from authenticated;
grant select, insert, delete on coherex_private.oauth_states to service_role;
