-- §4.1 step start, by the worker holding work item `job_id` of execution
-- `execution_id` (fenced, see _batch_fence). Returns (step_execution_id,
-- action, context, chunk_seq); action is
--   run                    run the step from `context` (the checkpoint) and
--                          commit chunks from `chunk_seq` on: the STARTED or
--                          PAUSED row of this execution is reused (resume,
--                          recovery, hand-off), or a new row is inserted with
--                          the context of the instance's last execution of the
--                          step when that ended FAILED or STOPPED (restart from
--                          checkpoint), empty otherwise
--   skip                   the step COMPLETED in an earlier execution of the
--                          instance (and not allow_start_if_complete), or was
--                          ABANDONED: go on with the next step
--   completed              the same, for the last step: the execution is now
--                          COMPLETED (ack the work item)
--   stopped                a stop was requested: the execution is now STOPPED
--                          (ack the work item)
--   start_limit_exceeded   the step started start_limit times over the
--                          instance's executions: the execution is now FAILED,
--                          exit START_LIMIT_EXCEEDED (StartLimitExceededError)
--   failed                 the step's last execution is UNKNOWN: the execution
--                          is now FAILED, exit STEP_UNKNOWN
-- In an execution started by a RestartAll or RestartFrom recovery, the steps
-- from its fresh_from_step on ignore the earlier executions: a new row, an
-- empty context (start_limit still counts their starts).
-- InvalidExecutionState (PB048) for a step the definition does not have, or
-- one that already ended in this execution.
create or replace function pgbatch.start_step(execution_id bigint, step_name text, job_id uuid, claim_token uuid)
returns table (step_execution_id bigint, action text, context jsonb, chunk_seq bigint)
language plpgsql
as $$
#variable_conflict use_column
declare
    x        pgbatch.job_execution;
    v_step   jsonb;
    v_index  integer;
    s        pgbatch.step_execution;
    v_last   pgbatch.step_execution;
    v_starts bigint;
    v_ctx    jsonb := '{}';
    v_seq    bigint;
    v_now    timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_fence(start_step.execution_id, start_step.job_id, start_step.claim_token);
    select d.value, d.ord - 1 into v_step, v_index
      from pgbatch.job_definition jd,
           jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
       and d.value ->> 'name' = start_step.step_name;
    if not found then
        perform pgbatch._raise('PB048', format('job execution %s has no step %s', x.id, to_json(start_step.step_name)));
    end if;
    if x.status = 'STOPPING' then
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped');
        return query select null::bigint, 'stopped'::text, null::jsonb, null::bigint;
        return;
    end if;

    select * into s from pgbatch.step_execution se
     where se.job_execution_id = x.id and se.step_name = start_step.step_name for update;
    if found then
        if s.status not in ('STARTED', 'PAUSED') then
            perform pgbatch._raise('PB048', format('step %s of job execution %s is %s and cannot start again',
                                                   to_json(s.step_name), x.id, s.status));
        end if;
        if s.status = 'PAUSED' then
            update pgbatch.step_execution se set status = 'STARTED', last_updated = v_now, version = se.version + 1
             where se.id = s.id;
        end if;
        update pgbatch.job_execution e set current_step = s.step_name where e.id = x.id;
        return query select s.id, 'run'::text, c.context, c.chunk_seq
                       from pgbatch.step_execution_context c where c.step_execution_id = s.id;
        return;
    end if;

    select se.* into v_last
      from pgbatch.step_execution se join pgbatch.job_execution e on e.id = se.job_execution_id
     where e.instance_id = x.instance_id and se.step_name = start_step.step_name
     order by se.id desc limit 1;
    select count(*) into v_starts
      from pgbatch.step_execution se join pgbatch.job_execution e on e.id = se.job_execution_id
     where e.instance_id = x.instance_id and se.step_name = start_step.step_name;
    if v_last.id is not null and (x.fresh_from_step is null or v_index < x.fresh_from_step) then
        if v_last.status = 'ABANDONED'
           or (v_last.status = 'COMPLETED' and not coalesce((v_step ->> 'allow_start_if_complete')::boolean, false)) then
            if jsonb_array_length((select jd.definition -> 'steps' from pgbatch.job_definition jd
                                    where jd.fingerprint = x.definition_fp
                                      and jd.job_name = (select i.job_name from pgbatch.job_instance i
                                                          where i.id = x.instance_id))) = v_index + 1 then
                perform pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                              detail => jsonb_build_object('skipped', start_step.step_name));
                return query select v_last.id, 'completed'::text, null::jsonb, null::bigint;
                return;
            end if;
            return query select v_last.id, 'skip'::text, null::jsonb, null::bigint;
            return;
        end if;
        if v_last.status = 'UNKNOWN' then
            perform pgbatch._batch_finish(x.id, 'FAILED', 'STEP_UNKNOWN',
                                          format('step %s ended UNKNOWN in execution %s', v_last.step_name,
                                                 v_last.job_execution_id), 'failed');
            return query select null::bigint, 'failed'::text, null::jsonb, null::bigint;
            return;
        end if;
        if v_last.status in ('FAILED', 'STOPPED') then
            select c.context into v_ctx from pgbatch.step_execution_context c where c.step_execution_id = v_last.id;
        end if;
    end if;
    if v_step ? 'start_limit' and v_starts >= (v_step ->> 'start_limit')::bigint then
        perform pgbatch._batch_finish(x.id, 'FAILED', 'START_LIMIT_EXCEEDED',
                                      format('step %s was started %s times (start_limit %s)', start_step.step_name,
                                             v_starts, v_step ->> 'start_limit'), 'failed');
        return query select null::bigint, 'start_limit_exceeded'::text, null::jsonb, null::bigint;
        return;
    end if;

    insert into pgbatch.step_execution (job_execution_id, step_name, step_index, status, start_time, last_updated)
    values (x.id, start_step.step_name, v_index, 'STARTED', v_now, v_now)
    returning * into s;
    insert into pgbatch.step_execution_context (step_execution_id, context, chunk_seq)
    values (s.id, coalesce(v_ctx, '{}'), 0);
    update pgbatch.job_execution e
       set current_step = s.step_name, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'step_started', x.status, x.status, null,
                                 jsonb_build_object('step', s.step_name, 'restart_of',
                                                    case when x.fresh_from_step is null or v_index < x.fresh_from_step
                                                         then v_last.id end));
    return query select s.id, 'run'::text, coalesce(v_ctx, '{}'), 0::bigint;
end
$$;
