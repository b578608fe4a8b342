-- T17 abandon (BATCH.md §3, §5): an operator gives up on an execution that
-- is not running. STOPPED, FAILED, UNKNOWN, PAUSED, AWAITING_APPROVAL ->
-- ABANDONED; STARTED, STOPPING, PAUSING only when the work item's lease has
-- expired (its worker is gone), else JobExecutionAlreadyRunningError
-- (PB044). Steps that did not complete become ABANDONED (a restart skips
-- them, and the instance cannot be restarted: JobRestartError abandoned),
-- PENDING approvals EXPIRED, a waiting work item is cancelled. Returns
-- (applied, status): applied = false, changing nothing, for STARTING,
-- COMPLETED and ABANDONED. A repeated call with the same `request_id`
-- returns the first one's result. JobExecutionNotFound (PB047).
create or replace function pgbatch.abandon_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x       pgbatch.job_execution;
    v_lease timestamptz;
begin
    x := pgbatch._batch_lock_operator(abandon_execution.execution_id);
    if abandon_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'abandon', abandon_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('STARTED', 'STOPPING', 'PAUSING') then
        select j.lease_expires_at into v_lease from pgbatch.job j where j.id = x.queue_job_id;
        if v_lease is not null and v_lease >= pgbatch.now() then
            perform pgbatch._raise('PB044', format('job execution %s is %s and its worker holds a live lease until %s',
                                                   x.id, x.status, v_lease),
                                   'stop_execution() it, or abandon it after the lease has expired');
        end if;
    elsif x.status not in ('STOPPED', 'FAILED', 'UNKNOWN', 'PAUSED', 'AWAITING_APPROVAL') then
        return query select false, x.status;
        return;
    end if;
    if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
        perform pgbatch.cancel_job(x.queue_job_id);
    end if;
    perform pgbatch._batch_finish(x.id, 'ABANDONED', 'ABANDONED', null, 'abandon', abandon_execution.request_id);
    return query select true, 'ABANDONED'::text;
end
$$;
