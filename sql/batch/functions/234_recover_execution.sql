-- T20 recover (BATCH.md §3, Spring Batch 6's recover): an operator settles an
-- execution whose outcome nobody will report. UNKNOWN, or STARTED / STOPPING /
-- PAUSING whose work item's lease has expired (or that has no claimed work
-- item), -> FAILED with exit RECOVERED; steps that had not ended (STARTED,
-- PAUSED, UNKNOWN) -> FAILED, so a restart runs them again (from their
-- checkpoint). The work item is retired. Returns (applied, status): applied =
-- false, changing nothing, in any other status or while a worker holds a live
-- lease. A repeated call with the same `request_id` returns the first one's
-- result. JobExecutionNotFound (PB047).
create or replace function pgbatch.recover_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x       pgbatch.job_execution;
    v_lease timestamptz;
begin
    x := pgbatch._batch_lock_operator(recover_execution.execution_id);
    if recover_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'recover', recover_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('STARTED', 'STOPPING', 'PAUSING') then
        select j.lease_expires_at into v_lease from pgbatch.job j
         where j.id = x.queue_job_id and j.state = 'claimed';
        if v_lease is not null and v_lease >= pgbatch.now() then
            return query select false, x.status;
            return;
        end if;
    elsif x.status <> 'UNKNOWN' then
        return query select false, x.status;
        return;
    end if;
    if x.queue_job_id is not null then
        perform pgbatch._batch_retire_item(x.queue_job_id, 'recovered by an operator');
    end if;
    perform pgbatch._batch_finish(x.id, 'FAILED', 'RECOVERED',
                                  coalesce(x.exit_message, format('recovered by an operator from %s', x.status)),
                                  'recover', recover_execution.request_id, 'FAILED',
                                  jsonb_build_object('from', x.status));
    return query select true, 'FAILED'::text;
end
$$;
