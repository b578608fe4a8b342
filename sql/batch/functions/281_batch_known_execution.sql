-- `execution_id` when a job execution has that id, else JobExecutionNotFound
-- (PB047).
create or replace function pgbatch._batch_known_execution(execution_id bigint)
returns bigint
language plpgsql
stable
as $$
begin
    perform 1 from pgbatch.job_execution x where x.id = _batch_known_execution.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', _batch_known_execution.execution_id));
    end if;
    return _batch_known_execution.execution_id;
end
$$;
