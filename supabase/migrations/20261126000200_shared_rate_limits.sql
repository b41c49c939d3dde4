-- Rate limits shared by every process: one token bucket per key in the database, instead of one
-- per process (N processes allowed N times the rate). Keys are ids: an API key or chat user (the
-- HTTP API's limit, shared by web processes) or a data source (calls to Slack, GitHub, ... shared
-- by workers).
--
-- Unlogged: the buckets are seconds of state; after a crash they simply start full. One row per
-- key that ever took a token. Private schema: not exposed through PostgREST; only the
-- platform (service_role) takes tokens.

create unlogged table if not exists coherex_private.rate_buckets (
  key uuid primary key,
  tokens double precision not null,
  updated_at timestamptz not null
);
revoke all on coherex_private.rate_buckets from public;

-- Take one token from `p_key`'s bucket (refilled at p_rate a second, holding at most p_burst):
-- 0 when allowed, else the seconds until a token is there. The row lock makes concurrent
-- requests of one key, from any process, take tokens one at a time.
create or replace function coherex_private.take_rate_token(p_key uuid, p_rate double precision,
                                                          p_burst double precision)
returns double precision
language plpgsql security definer set search_path = '' as $$
declare
  now_ts timestamptz := clock_timestamp();
  available double precision;
begin
  insert into coherex_private.rate_buckets as b (key, tokens, updated_at)
  values (p_key, p_burst, now_ts)
  on conflict (key) do update
    set tokens = least(p_burst, b.tokens + greatest(0, extract(epoch from now_ts - b.updated_at)) * p_rate),
        updated_at = now_ts
  returning tokens into available;
  if available < 1 then
    return (1 - available) / p_rate;
  end if;
  update coherex_private.rate_buckets set tokens = tokens - 1 where key = p_key;
  return 0;
end
$$;
revoke execute on function coherex_private.take_rate_token(uuid, double precision, double precision) from public;
grant execute on function coherex_private.take_rate_token(uuid, double precision, double precision) to service_role;
