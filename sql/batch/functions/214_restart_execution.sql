-- Restarts the job instance of execution `execution_id` with that
-- execution's parameters (launch_job's rules and errors), and returns the new
-- execution's id. JobExecutionNotFound (PB047) for an unknown id.
create or replace function pgbatch.restart_execution(execution_id bigint, request_id text default null)
returns bigint
language plpgsql
as $$
declare
    v_name   text;
    v_params jsonb;
begin
    select i.job_name, x.params into v_name, v_params
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where x.id = restart_execution.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', restart_execution.execution_id));
    end if;
    return pgbatch.launch_job(v_name, v_params, restart_execution.request_id);
end
$$;
