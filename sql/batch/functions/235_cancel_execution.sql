-- Administrative cancel (BATCH.md decision 3): ends any execution that is not
-- terminal at once, whether a worker runs it or not: -> STOPPED with exit
-- CANCELLED (a STOPPED execution, so the instance may be restarted; the exit
-- code is what reports CANCELLED). The running step ends STOPPED at its last
-- committed chunk; a worker that still runs it is fenced out at its next call
-- (its uncommitted chunk rolls back); the work item is cancelled (a claimed
-- one ends cancelled when its claim ends); PENDING approvals EXPIRED. Returns
-- (applied, status): applied = false, changing nothing, for COMPLETED,
-- FAILED, STOPPED and ABANDONED. A repeated call with the same `request_id`
-- returns the first one's result. JobExecutionNotFound (PB047).
create or replace function pgbatch.cancel_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x pgbatch.job_execution;
begin
    x := pgbatch._batch_lock_operator(cancel_execution.execution_id);
    if cancel_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'cancel', cancel_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED') then
        return query select false, x.status;
        return;
    end if;
    if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
        perform pgbatch.cancel_job(x.queue_job_id);
    end if;
    perform pgbatch._batch_finish(x.id, 'STOPPED', 'CANCELLED', 'cancelled by an operator', 'cancel',
                                  cancel_execution.request_id, 'STOPPED', jsonb_build_object('from', x.status));
    return query select true, 'STOPPED'::text;
end
$$;
