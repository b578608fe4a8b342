-- T10 / T11 operator pause (BATCH.md §3, §4.3). STARTED -> PAUSING
-- (pause_requested_at set, event `pause`; the worker parks at its next chunk
-- commit or step start: PAUSED at that checkpoint, event `paused`);
-- STARTING -> PAUSED at once (T11: the waiting work item is cancelled, so no
-- worker runs it; event `paused`). `reason` (default 'paused by an operator')
-- and `resume_at` (a timed pause: the resume sweep resumes it then) are kept
-- for the parked execution. Returns (applied, status): applied = false,
-- changing nothing, in any other status (PAUSING, PAUSED, STOPPING, ended,
-- ...). A repeated call with the same `request_id` returns the first one's
-- result. JobExecutionNotFound (PB047); InvalidResumeAt (PB050) for a
-- `resume_at` that is infinite or not in the future.
create or replace function pgbatch.pause_execution(execution_id bigint, request_id text default null,
    reason text default null, resume_at timestamptz default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x     pgbatch.job_execution;
    v_now timestamptz := pgbatch.now();
    v_why text := coalesce(pause_execution.reason, 'paused by an operator');
begin
    x := pgbatch._batch_lock_operator(pause_execution.execution_id);
    if pause_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'pause', pause_execution.request_id)
                     union all
                     select * from pgbatch._batch_prior_result(x.id, 'paused', pause_execution.request_id);
        if found then
            return;
        end if;
    end if;
    perform pgbatch._batch_check_resume_at(pause_execution.resume_at);
    if length(v_why) > 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: a pause reason is at most 10000 characters');
    end if;
    if x.status = 'STARTED' then
        update pgbatch.job_execution e
           set status = 'PAUSING', pause_requested_at = v_now, pause_reason = v_why,
               resume_at = pause_execution.resume_at, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, null, 'pause', x.status, 'PAUSING', pause_execution.request_id,
                                     jsonb_build_object('reason', v_why, 'resume_at', pause_execution.resume_at));
        return query select true, 'PAUSING'::text;
    elsif x.status = 'STARTING' then
        if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
            perform pgbatch.cancel_job(x.queue_job_id);
        end if;
        update pgbatch.job_execution e set pause_requested_at = v_now where e.id = x.id;
        perform pgbatch._batch_park(x.id, v_why, pause_execution.resume_at, pause_execution.request_id,
                                    jsonb_build_object('source', 'operator', 'job_id', x.queue_job_id));
        return query select true, 'PAUSED'::text;
    else
        return query select false, x.status;
    end if;
end
$$;
