-- The fence of every worker call on an execution: locks the work item's
-- queue row (ClaimLost, PB001, unless `claim_token` holds `job_id`), then the
-- execution's row, and checks that this work item is the execution's current
-- one and that the execution is running (STARTED, STOPPING, PAUSING):
-- FencedOut (PB046) otherwise, e.g. for a zombie whose work was handed to
-- another claim. JobExecutionNotFound (PB047) for an unknown execution.
-- Returns the locked execution row.
create or replace function pgbatch._batch_fence(execution_id bigint, job_id uuid, claim_token uuid)
returns pgbatch.job_execution
language plpgsql
as $$
declare
    x pgbatch.job_execution;
begin
    perform 1 from pgbatch.job j
     where j.id = _batch_fence.job_id and j.claim_token = _batch_fence.claim_token
       for update;
    if not found then
        perform pgbatch._settled_result(_batch_fence.job_id, _batch_fence.claim_token, 'fence');
        perform pgbatch._raise('PB001', format('claim of job %s is lost', _batch_fence.job_id));
    end if;
    select * into x from pgbatch.job_execution e where e.id = _batch_fence.execution_id for update;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', _batch_fence.execution_id));
    end if;
    if x.queue_job_id is distinct from _batch_fence.job_id or x.status not in ('STARTED', 'STOPPING', 'PAUSING') then
        perform pgbatch._raise('PB046', format('fenced out of job execution %s', x.id),
                               format('the execution is %s and its current work item is %s, not %s',
                                      x.status, x.queue_job_id, _batch_fence.job_id));
    end if;
    return x;
end
$$;
