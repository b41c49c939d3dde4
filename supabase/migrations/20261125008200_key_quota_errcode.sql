-- An exceeded API-key quota gets its own SQLSTATE (CX402), so the API answers it like a team
-- quota (402 Payment Required-style, "quota_exceeded") instead of a permission error.

create or replace function coherex_private.api_key_quota() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  k public.api_keys%rowtype;
  claim text := auth.jwt() ->> 'key_id';
  used integer;
  spent numeric;
  going integer;
  month timestamptz := date_trunc('month', now());
begin
  if new.api_key_id is null and claim is not null and claim <> '' then
    new.api_key_id := claim::uuid;
  end if;
  if new.api_key_id is null then
    return new;
  end if;
  select * into k from public.api_keys where id = new.api_key_id;
  if not found then
    new.api_key_id := null;
    return new;
  end if;
  if k.quota_executions_month is not null then
    select count(*) into used from public.agent_executions
      where api_key_id = k.id and created_at >= month;
    if used >= k.quota_executions_month then
      raise exception 'API key % has used its % executions for this month', k.name, k.quota_executions_month
        using errcode = 'CX402', hint = 'An owner can raise it: coherex teams quota --key';
    end if;
  end if;
  if k.quota_cost_month_usd is not null then
    select coalesce(sum(cost_usd), 0) into spent from public.agent_executions
      where api_key_id = k.id and created_at >= month;
    if spent >= k.quota_cost_month_usd then
      raise exception 'API key % has spent $% of its $% monthly budget', k.name, round(spent, 2),
        k.quota_cost_month_usd using errcode = 'CX402';
    end if;
  end if;
  if k.max_concurrent_runs is not null then
    select count(*) into going from public.agent_executions
      where api_key_id = k.id and status in ('pending', 'running');
    if going >= k.max_concurrent_runs then
      raise exception 'API key % already has % runs going (its limit)', k.name, going
        using errcode = 'CX402';
    end if;
  end if;
  return new;
end
$$;
