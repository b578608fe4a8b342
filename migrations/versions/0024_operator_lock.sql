-- pgbatch migration 0024_operator_lock: operator calls retry their locks in a
-- subtransaction, so a retry never holds the execution's row while it waits
-- for the new work item's row (a deadlock with concurrent resumes/workers).
-- FROZEN: never edit this file after release; 0024_operator_lock.py pins its sha256.

-- ==== batch/functions/226_batch_lock_operator.sql ====
-- Locks an execution for an operator call, in the workers' lock order: its
-- current work item's queue row first (if it still exists), then the
-- execution's row; retried when the work item changed in between. Each
-- attempt runs in a subtransaction that is rolled back before a retry, so a
-- retry never holds the execution's row while it waits for the new work
-- item's row (the reverse of a worker's order: a deadlock between concurrent
-- operator calls and workers).
-- JobExecutionNotFound (PB047) for an unknown id. Returns the locked row.
create or replace function pgbatch._batch_lock_operator(execution_id bigint)
returns pgbatch.job_execution
language plpgsql
as $$
declare
    x     pgbatch.job_execution;
    v_job uuid;
begin
    for i in 1 .. 10 loop
        begin
            select e.queue_job_id into v_job from pgbatch.job_execution e where e.id = _batch_lock_operator.execution_id;
            if not found then
                perform pgbatch._raise('PB047', format('job execution %s not found', _batch_lock_operator.execution_id));
            end if;
            perform 1 from pgbatch.job j where j.id = v_job for update;
            select * into x from pgbatch.job_execution e where e.id = _batch_lock_operator.execution_id for update;
            if x.queue_job_id is not distinct from v_job or i = 10 then
                return x;
            end if;
            raise exception using errcode = 'PBRTY', message = 'work item changed: retry';
        exception when sqlstate 'PBRTY' then
            null;  -- the attempt's locks are released with its subtransaction
        end;
    end loop;
    return x;
end
$$;

select pgbatch._apply_privileges();
