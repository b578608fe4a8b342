-- History for operators: the PAUSED executions of job `job_name` (every job
-- when NULL), newest first, at most `limit` (1 to 10000, else
-- InvalidArgument, PB007), with what they wait for: the step they parked in,
-- the pause reason, resume_at (a timed pause; NULL: until resume_execution),
-- when they parked (their last `paused` or `recovered` event) and how often
-- they were resumed before.
create or replace function pgbatch.paused_executions(job_name text default null, "limit" integer default 100)
returns table (execution_id bigint, job text, current_step text, pause_reason text, resume_at timestamptz,
               paused_at timestamptz, resume_count integer)
language plpgsql
stable
as $$
begin
    if paused_executions."limit" is null or paused_executions."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    return query
    select x.id, i.job_name, x.current_step, x.pause_reason, x.resume_at,
           (select max(ev.at) from pgbatch.execution_event ev
             where ev.job_execution_id = x.id and ev.to_status = 'PAUSED'),
           x.resume_count
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where x.status = 'PAUSED'
       and (paused_executions.job_name is null or i.job_name = paused_executions.job_name)
     order by x.id desc
     limit paused_executions."limit";
end
$$;
