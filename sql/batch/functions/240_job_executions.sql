-- History for operators and the dashboard: the executions of job `job_name`
-- (every job when NULL) in `status` (any when NULL), newest first, at most
-- `limit` of them (1 to 10000, else InvalidArgument, PB007). The columns
-- `job` and `execution_status` are the job name and the status.
create or replace function pgbatch.job_executions(job_name text default null, status text default null,
    "limit" integer default 100)
returns table (execution_id bigint, instance_id bigint, job text, job_key text, execution_status text,
               exit_code text, exit_message text, current_step text, params jsonb,
               create_time timestamptz, start_time timestamptz, end_time timestamptz,
               resume_count integer, recovery_count integer, handoff_count integer)
language plpgsql
stable
as $$
begin
    if job_executions."limit" is null or job_executions."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    return query
    select x.id, x.instance_id, i.job_name, i.job_key::text, x.status, x.exit_code, x.exit_message,
           x.current_step, x.params, x.create_time, x.start_time, x.end_time,
           x.resume_count, x.recovery_count, x.handoff_count
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where (job_executions.job_name is null or i.job_name = job_executions.job_name)
       and (job_executions.status is null or x.status = job_executions.status)
     order by x.id desc
     limit job_executions."limit";
end
$$;
