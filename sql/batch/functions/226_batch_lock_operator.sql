-- Locks an execution for an operator call, in the workers' lock order: its
-- current work item's queue row first (if it still exists), then the
-- execution's row; retried when the work item changed in between.
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
        select e.queue_job_id into v_job from pgbatch.job_execution e where e.id = _batch_lock_operator.execution_id;
        if not found then
            perform pgbatch._raise('PB047', format('job execution %s not found', _batch_lock_operator.execution_id));
        end if;
        perform 1 from pgbatch.job j where j.id = v_job for update;
        select * into x from pgbatch.job_execution e where e.id = _batch_lock_operator.execution_id for update;
        if x.queue_job_id is not distinct from v_job then
            return x;
        end if;
    end loop;
    return x;
end
$$;
