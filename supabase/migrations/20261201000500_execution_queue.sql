-- An execution and its queue job commit together. The queue (procrastinate) lives in the same
-- Postgres, so the job is inserted in the transaction that creates (or re-queues) the execution:
-- there is never a `pending` row without a job, nor a job without a row. Callers act as
-- themselves (RLS) and may not touch the queue tables; this function does it for them, only for
-- a pending execution they can see.
--
-- The task name, queue and arguments are those of `coherex.jobs.RUN_TASK` (tests run every
-- queued execution through a real worker, so a mismatch fails them). The queueing lock is the
-- execution id: at most one waiting job per execution. (search_path: procrastinate's own
-- functions name their tables unqualified.)

create or replace function coherex_private.queue_execution(p_execution uuid,
                                                          p_delay_seconds double precision default 0)
returns boolean
language plpgsql security definer set search_path = public, pg_temp as $$
begin
  if not exists (
    select 1 from public.agent_executions e
    where e.id = p_execution and e.status = 'pending'
      and (coalesce(current_setting('request.jwt.claims', true)::jsonb ->> 'role', '') = 'service_role'
           or e.team_id = any (coherex_private.my_team_ids('viewer')))
  ) then
    return false;
  end if;
  begin
    perform public.procrastinate_defer_jobs_v1(array[row(
      'executions', 'run_execution', 0, null, p_execution::text,
      jsonb_build_object('execution_id', p_execution::text),
      case when p_delay_seconds > 0 then clock_timestamp() + make_interval(secs => p_delay_seconds) end
    )::public.procrastinate_job_to_defer_v1]);
  exception when unique_violation then
    return false;  -- a job for it is waiting already
  end;
  return true;
end
$$;
revoke execute on function coherex_private.queue_execution(uuid, double precision) from public;
grant execute on function coherex_private.queue_execution(uuid, double precision) to authenticated, service_role;

-- The safety net for what cannot share a transaction (an in-process run whose process died before
-- it started; a job that ended without running its execution): pending executions older than
-- `p_grace_seconds` with no waiting or running job get one. Service identity only.
create or replace function coherex_private.queue_orphaned_executions(p_grace_seconds double precision)
returns setof uuid
language plpgsql security definer set search_path = '' as $$
declare
  orphan uuid;
begin
  for orphan in
    select e.id from public.agent_executions e
    where e.status = 'pending' and e.updated_at < now() - make_interval(secs => p_grace_seconds)
      and not exists (select 1 from public.procrastinate_jobs j
                      where j.queueing_lock = e.id::text and j.status in ('todo', 'doing'))
    order by e.created_at
    limit 500
    for update of e skip locked
  loop
    if coherex_private.queue_execution(orphan) then
      return next orphan;
    end if;
  end loop;
end
$$;
revoke execute on function coherex_private.queue_orphaned_executions(double precision) from public;
grant execute on function coherex_private.queue_orphaned_executions(double precision) to service_role;
