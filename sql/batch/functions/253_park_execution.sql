-- T9 / T10 / shutdown pause, by the worker holding work item `job_id` of
-- execution `execution_id` (fenced, see _batch_fence): the execution parks
-- PAUSED at the step's last committed checkpoint (_batch_park: step PAUSED,
-- lease cleared, `reason`, optional `resume_at`, event `paused` with detail
-- `source` (logic, exception, operator, shutdown), NOTIFY). Called in the
-- chunk's own transaction after commit_chunk (ctx.request_pause(): the
-- checkpoint and the pause are one commit), or in a transaction of its own
-- (raise PauseJob: the chunk was rolled back; an operator's pause read back at
-- a chunk commit or a step start; a worker's shutdown). `step_done`: the step
-- that runs has finished its work (a tasklet that called request_pause()):
-- it ends COMPLETED and the execution parks before the next step (at the last
-- step the execution is COMPLETED instead: nothing is left to pause). A
-- STOPPING execution ends STOPPED instead (the stop was asked first). The
-- work item is acked without follow-up (nothing runs until a resume), here
-- or, with `ack` false, by the caller in this transaction. Returns (status,
-- step, pause_reason, resumes_at): the status reached (PAUSED; STOPPED or
-- COMPLETED as above), the step it parked at, and the stored pause. InvalidResumeAt (PB050) for a `resume_at` that is
-- infinite or not in the future, changing nothing.
create or replace function pgbatch.park_execution(execution_id bigint, job_id uuid, claim_token uuid,
    reason text default null, resume_at timestamptz default null, source text default 'logic',
    step_done boolean default false, ack boolean default true)
returns table (status text, step text, pause_reason text, resumes_at timestamptz)
language plpgsql
as $$
#variable_conflict use_column
declare
    x      pgbatch.job_execution;
    s      pgbatch.step_execution;
    v_next text;
    v_now  timestamptz := pgbatch.now();
    v_fin  text;
    v_why  text;
    v_at   timestamptz;
begin
    x := pgbatch._batch_fence(park_execution.execution_id, park_execution.job_id, park_execution.claim_token);
    perform pgbatch._batch_check_resume_at(park_execution.resume_at);
    if park_execution.source is null or park_execution.source not in ('logic', 'exception', 'operator', 'shutdown') then
        perform pgbatch._raise('PB007', format('invalid argument: source must be logic, exception, operator or shutdown, not %s',
                                               coalesce(park_execution.source, 'NULL')));
    end if;
    if park_execution.reason is not null and length(park_execution.reason) > 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: a pause reason is at most 10000 characters');
    end if;
    -- an operator's pause keeps the reason and resume_at it was asked with
    v_why := coalesce(park_execution.reason, x.pause_reason,
                      case park_execution.source when 'shutdown' then 'paused at the worker''s shutdown' end);
    v_at := coalesce(park_execution.resume_at, x.resume_at);
    if x.status = 'STOPPING' then
        v_fin := pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped', null, 'STOPPED',
                                       jsonb_build_object('step', x.current_step, 'at', 'pause'));
    elsif park_execution.step_done then
        select * into s from pgbatch.step_execution se
         where se.job_execution_id = x.id and se.step_name = x.current_step and se.status = 'STARTED' for update;
        if not found then
            perform pgbatch._raise('PB048', format('job execution %s has no running step %s', x.id, to_json(x.current_step)));
        end if;
        update pgbatch.step_execution se
           set status = 'COMPLETED', exit_code = 'COMPLETED', end_time = v_now, last_updated = v_now,
               version = se.version + 1
         where se.id = s.id;
        select d.value ->> 'name' into v_next
          from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
         where jd.fingerprint = x.definition_fp
           and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
           and d.ord = s.step_index + 2;
        if v_next is null then
            v_fin := pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                           detail => jsonb_build_object('step', s.step_name, 'pause', v_why));
        else
            update pgbatch.job_execution e set current_step = v_next where e.id = x.id;
            v_fin := pgbatch._batch_park(x.id, v_why, v_at, null,
                                         jsonb_build_object('source', park_execution.source, 'after_step', s.step_name));
        end if;
    else
        v_fin := pgbatch._batch_park(x.id, v_why, v_at, null,
                                     jsonb_build_object('source', park_execution.source));
    end if;
    if park_execution.ack then
        perform pgbatch.ack(park_execution.job_id, park_execution.claim_token);
    end if;
    select * into x from pgbatch.job_execution e where e.id = x.id;
    return query select v_fin, x.current_step,
                        case when v_fin = 'PAUSED' then x.pause_reason end,
                        case when v_fin = 'PAUSED' then x.resume_at end;
end
$$;
