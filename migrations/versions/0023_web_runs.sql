-- pgbatch migration 0023_web_runs: the dashboard's keyset page of job
-- executions, job_executions_page (new, an admin report). Nothing existing
-- changes.
-- FROZEN: never edit this file after release; 0023_web_runs.py pins its sha256.

-- ==== batch/functions/243_job_executions_page.sql ====
-- One keyset page of job executions for the dashboard: those of job
-- `job_name` (every job when NULL) in `status` (any when NULL) with an id
-- below `before_execution_id` (from the newest when NULL), newest first, at
-- most `limit` (1 to 10000, else InvalidArgument, PB007). The columns are
-- those of job_executions(); pass the last row's execution_id as the next
-- page's before_execution_id. Walks the primary key backwards, so a page
-- costs the same on the first page and the thousandth.
create or replace function pgbatch.job_executions_page(job_name text default null,
    status text default null, before_execution_id bigint default null,
    "limit" integer default 50)
returns table (execution_id bigint, instance_id bigint, job text, job_key text, execution_status text,
               exit_code text, exit_message text, current_step text, params jsonb,
               create_time timestamptz, start_time timestamptz, end_time timestamptz,
               resume_count integer, recovery_count integer, handoff_count integer)
language plpgsql
stable
as $$
begin
    if job_executions_page."limit" is null or job_executions_page."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    return query
    select x.id, x.instance_id, i.job_name, i.job_key::text, x.status, x.exit_code, x.exit_message,
           x.current_step, x.params, x.create_time, x.start_time, x.end_time,
           x.resume_count, x.recovery_count, x.handoff_count
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where (job_executions_page.job_name is null or i.job_name = job_executions_page.job_name)
       and (job_executions_page.status is null or x.status = job_executions_page.status)
       and (job_executions_page.before_execution_id is null
            or x.id < job_executions_page.before_execution_id)
     order by x.id desc
     limit job_executions_page."limit";
end
$$;

-- ==== batch/privileges/045_web_runs_access.sql ====
-- Who may execute the dashboard's page of job executions (docs/roles.md):
-- an operator report, admin only, like job_executions.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('job_executions_page', 'admin', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
