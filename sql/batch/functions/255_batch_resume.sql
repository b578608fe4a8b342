-- T12, shared by resume_execution and the timed-resume sweep: execution
-- `execution_id` (its row locked by the caller) PAUSED -> STARTING,
-- resume_count + 1, pause_reason, resume_at and pause_requested_at cleared,
-- a fresh work item for its current step (the next claim reopens the same
-- step row from its checkpoint: nothing else is inserted), one event
-- `resumed` (request_id, detail: step, work item, actor kind `by`). When the
-- job's definition registered last has another fingerprint than the
-- execution's: JobDefinitionChangedError (PB049) unless
-- `allow_definition_change`; then the execution goes on with that definition,
-- its step rows matched by name (their step_index follows the new order), and
-- ends FAILED (exit STEP_MISSING, in the same `resumed` event's transaction)
-- when its current step is not in it. Returns (applied, status); (false,
-- status) when the execution is not PAUSED.
create or replace function pgbatch._batch_resume(execution_id bigint, request_id text,
    allow_definition_change boolean, by_whom text)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x       pgbatch.job_execution;
    v_def   pgbatch.job_definition;
    v_name  text;
    v_now   timestamptz := pgbatch.now();
    v_id    uuid;
    v_moved boolean := false;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_resume.execution_id;
    if x.status is distinct from 'PAUSED' then
        return query select false, x.status;
        return;
    end if;
    v_name := (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id);
    select * into v_def from pgbatch.job_definition d
     where d.job_name = v_name order by d.last_registered_at desc, d.fingerprint limit 1;
    if found and v_def.fingerprint <> x.definition_fp then
        if not coalesce(_batch_resume.allow_definition_change, false) then
            perform pgbatch._raise('PB049', format('job execution %s of %s was paused with definition %s; the job''s '
                                                   'definition is now %s', x.id, to_json(v_name), x.definition_fp,
                                                   v_def.fingerprint),
                                   'resume with allow_definition_change => true to go on with the new definition '
                                   '(steps matched by name)');
        end if;
        v_moved := true;
        update pgbatch.step_execution s
           set step_index = d.ord - 1, last_updated = v_now, version = s.version + 1
          from jsonb_array_elements(v_def.definition -> 'steps') with ordinality d(value, ord)
         where s.job_execution_id = x.id and d.value ->> 'name' = s.step_name and s.step_index <> d.ord - 1;
        update pgbatch.job_execution e set definition_fp = v_def.fingerprint where e.id = x.id;
        if not exists (select 1 from jsonb_array_elements(v_def.definition -> 'steps') d(value)
                        where d.value ->> 'name' = x.current_step) then
            perform pgbatch._batch_finish(x.id, 'FAILED', 'STEP_MISSING',
                                          format('step %s is not in the job''s new definition %s', to_json(x.current_step),
                                                 v_def.fingerprint),
                                          'resumed', _batch_resume.request_id, 'FAILED',
                                          jsonb_build_object('step', x.current_step, 'by', _batch_resume.by_whom,
                                                             'definition_fp', v_def.fingerprint,
                                                             'previous_definition_fp', x.definition_fp));
            return query select true, 'FAILED'::text;
            return;
        end if;
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', resume_count = e.resume_count + 1, resume_at = null, pause_reason = null,
           pause_requested_at = null, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    v_id := pgbatch._batch_enqueue(x.id, x.current_step);
    perform pgbatch._batch_event(x.id, null, 'resumed', 'PAUSED', 'STARTING', _batch_resume.request_id,
                                 jsonb_build_object('step', x.current_step, 'job_id', v_id, 'by', _batch_resume.by_whom,
                                                    'reason', x.pause_reason)
                                 || case when v_moved then jsonb_build_object('definition_fp', v_def.fingerprint,
                                                                              'previous_definition_fp', x.definition_fp)
                                         else '{}' end);
    return query select true, 'STARTING'::text;
end
$$;
