-- The new execution of a RestartAll or RestartFrom recovery (BATCH.md §7), in
-- the transaction that ended `old` (FAILED, HOST_LOST): same instance,
-- parameters and definition, STARTING at step index `fresh_from` (0-based);
-- that step and the later ones run from scratch (fresh_from_step), the earlier
-- ones are skipped. The recovery count carries over (`recovery_count`), so
-- max_recoveries bounds a crash loop across the executions. The job context is
-- empty for RestartAll (fresh_from = 0) and copied otherwise. Event `launched`
-- (detail: restart_of, reason), its first work item. Returns its id.
create or replace function pgbatch._batch_relaunch(old pgbatch.job_execution, fresh_from integer,
    recovery_count integer, reason text)
returns bigint
language plpgsql
as $$
declare
    v_step text;
    v_exec bigint;
    v_ctx  jsonb := '{}';
    v_now  timestamptz := pgbatch.now();
begin
    perform 1 from pgbatch.job_instance i where i.id = old.instance_id for update;
    select d.value ->> 'name' into v_step
      from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = old.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = old.instance_id)
       and d.ord = _batch_relaunch.fresh_from + 1;
    if _batch_relaunch.fresh_from > 0 then
        select c.context into v_ctx from pgbatch.job_execution_context c where c.job_execution_id = old.id;
    end if;
    insert into pgbatch.job_execution
        (instance_id, status, params, definition_fp, recovery_policy, queue, current_step, recovery_count,
         fresh_from_step, create_time, last_updated)
    values (old.instance_id, 'STARTING', old.params, old.definition_fp, old.recovery_policy, old.queue, v_step,
            _batch_relaunch.recovery_count, _batch_relaunch.fresh_from, v_now, v_now)
    returning id into v_exec;
    insert into pgbatch.job_execution_context (job_execution_id, context) values (v_exec, coalesce(v_ctx, '{}'));
    perform pgbatch._batch_event(v_exec, null, 'launched', null, 'STARTING', null,
                                 jsonb_build_object('restart_of', old.id, 'reason', _batch_relaunch.reason,
                                                    'policy', old.recovery_policy, 'step', v_step));
    perform pgbatch._batch_enqueue(v_exec, v_step);
    return v_exec;
end
$$;
