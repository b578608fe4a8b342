-- History: the step executions of execution `execution_id` in step order,
-- with their counters and checkpoint. JobExecutionNotFound (PB047) for an
-- unknown execution.
create or replace function pgbatch.step_executions(execution_id bigint)
returns table (step_execution_id bigint, step_name text, step_index integer, status text, exit_code text,
               exit_message text, read_count bigint, write_count bigint, filter_count bigint,
               commit_count bigint, rollback_count bigint, read_skip_count bigint, process_skip_count bigint,
               write_skip_count bigint, chunk_seq bigint, context jsonb,
               start_time timestamptz, end_time timestamptz)
language plpgsql
stable
as $$
begin
    perform 1 from pgbatch.job_execution x where x.id = step_executions.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', step_executions.execution_id));
    end if;
    return query
    select s.id, s.step_name, s.step_index, s.status, s.exit_code, s.exit_message, s.read_count,
           s.write_count, s.filter_count, s.commit_count, s.rollback_count, s.read_skip_count,
           s.process_skip_count, s.write_skip_count, c.chunk_seq, c.context, s.start_time, s.end_time
      from pgbatch.step_execution s join pgbatch.step_execution_context c on c.step_execution_id = s.id
     where s.job_execution_id = step_executions.execution_id
     order by s.step_index, s.id;
end
$$;
