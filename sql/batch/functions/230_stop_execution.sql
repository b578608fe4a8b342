-- T6/T7 stop (BATCH.md §3, §5). STARTED or PAUSING -> STOPPING
-- (stop_requested_at set; the worker sees it at its next chunk commit, step
-- start or job end); STARTING, PAUSED, AWAITING_APPROVAL -> STOPPED at once
-- (exit STOPPED, PENDING approvals EXPIRED, the waiting work item
-- cancelled). Returns (applied, status): applied = false, changing nothing,
-- when the execution is in any other status (it already stopped or ended).
-- A repeated call with the same `request_id` returns the first one's result.
-- JobExecutionNotFound (PB047).
create or replace function pgbatch.stop_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x     pgbatch.job_execution;
    v_now timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_lock_operator(stop_execution.execution_id);
    if stop_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'stop', stop_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('STARTED', 'PAUSING') then
        update pgbatch.job_execution e
           set status = 'STOPPING', stop_requested_at = v_now, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, null, 'stop', x.status, 'STOPPING', stop_execution.request_id);
        return query select true, 'STOPPING'::text;
    elsif x.status in ('STARTING', 'PAUSED', 'AWAITING_APPROVAL') then
        update pgbatch.job_execution e set stop_requested_at = v_now where e.id = x.id;
        if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
            perform pgbatch.cancel_job(x.queue_job_id);
        end if;
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stop', stop_execution.request_id);
        return query select true, 'STOPPED'::text;
    else
        return query select false, x.status;
    end if;
end
$$;
