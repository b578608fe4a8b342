-- The state of the run a fire started: for a queue job (`job_id`) pending,
-- running (claimed), succeeded (done), failed (dead) or cancelled; for a
-- batch execution (`job_execution_id`) pending (STARTING), running (STARTED,
-- STOPPING, PAUSING, PAUSED, AWAITING_APPROVAL, UNKNOWN), succeeded
-- (COMPLETED), failed (FAILED), stopped (STOPPED) or abandoned (ABANDONED).
-- NULL when nothing ran or its record is gone (retention).
create or replace function pgbatch._schedule_run_status(job_id uuid, job_execution_id bigint)
returns text
language plpgsql
stable
as $$
declare
    v_state text;
begin
    if _schedule_run_status.job_execution_id is not null then
        select x.status into v_state from pgbatch.job_execution x
         where x.id = _schedule_run_status.job_execution_id;
        if not found then
            return null;
        end if;
        return case v_state
            when 'STARTING' then 'pending'
            when 'COMPLETED' then 'succeeded'
            when 'FAILED' then 'failed'
            when 'STOPPED' then 'stopped'
            when 'ABANDONED' then 'abandoned'
            else 'running' end;
    end if;
    if _schedule_run_status.job_id is not null then
        select j.state into v_state from pgbatch.job j where j.id = _schedule_run_status.job_id;
        if found then
            return case v_state when 'claimed' then 'running' else 'pending' end;
        end if;
        select a.state into v_state from pgbatch.job_archive a where a.id = _schedule_run_status.job_id;
        return case v_state when 'done' then 'succeeded' when 'dead' then 'failed'
                            when 'cancelled' then 'cancelled' end;
    end if;
    return null;
end
$$;
