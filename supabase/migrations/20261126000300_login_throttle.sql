-- Password guessing: after COHEREX_LOGIN_ATTEMPTS failed sign-ins an account accepts one more try
-- every COHEREX_LOGIN_RETRY_SECONDS. Failures take tokens from the shared rate buckets
-- (take_rate_token); before a password is even checked, the bucket is only looked at — so a
-- throttled account answers the same whether the password is right or not.

create or replace function coherex_private.rate_tokens(p_key uuid, p_rate double precision,
                                                      p_burst double precision)
returns double precision
language sql stable security definer set search_path = '' as $$
  select coalesce(
    (select least(p_burst, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * p_rate)
     from coherex_private.rate_buckets b where b.key = p_key),
    p_burst)
$$;
revoke execute on function coherex_private.rate_tokens(uuid, double precision, double precision) from public;
grant execute on function coherex_private.rate_tokens(uuid, double precision, double precision) to service_role;
