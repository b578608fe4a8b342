-- Recovers execution `execution_id` whose worker was lost (BATCH.md §7, T18,
-- T19): its lease expired, its node restarted, or its work item was reaped or
-- released and claimed again. The caller holds the lock of the execution's
-- current work item (if it is live) and of the execution. By status:
--   STOPPING  -> STOPPED; the running step STOPPED at its last checkpoint
--   PAUSING   -> PAUSED; the running step PAUSED at its last checkpoint
--               (pgbatch_batch_parked is notified)
--   STARTED   the job's recovery policy, after the recovery limit:
--     recovery_count + 1 > max_recoveries  -> FAILED, exit RECOVERY_LIMIT
--     ResumeForward  -> STARTING, recovery_count + 1: the same execution
--                       and step row go on from the last committed chunk
--     RestartAll     -> FAILED (HOST_LOST) and a new execution whose steps
--                       all run from scratch (_batch_relaunch)
--     RestartFrom:s  -> FAILED (HOST_LOST) and a new execution from step s,
--                       or from the step that was running when it comes
--                       earlier (unfinished work is never skipped)
--     Fail           -> FAILED (HOST_LOST)
--   any other status: nothing (returned as it is)
-- `keep_item`: the caller (start_execution) holds a new claim of the current
-- work item and goes on with it (ResumeForward) or acks it; otherwise the item
-- is retired (_batch_retire_item) and ResumeForward enqueues a fresh one.
-- One event `recovered` (detail: reason, policy, new execution) per recovery.
-- Returns the execution's new status.
create or replace function pgbatch._batch_recover(execution_id bigint, reason text, keep_item boolean)
returns text
language plpgsql
as $$
declare
    x        pgbatch.job_execution;
    v_def    jsonb;
    v_max    integer;
    v_cur    integer;
    v_from   integer;
    v_new    bigint;
    v_now    timestamptz := pgbatch.now();
    v_detail jsonb;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_recover.execution_id for update;
    if not found or x.status not in ('STARTED', 'STOPPING', 'PAUSING') then
        return x.status;
    end if;
    select jd.definition into v_def from pgbatch.job_definition jd
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id);
    v_detail := jsonb_build_object('reason', _batch_recover.reason, 'policy', x.recovery_policy,
                                   'step', x.current_step, 'job_id', x.queue_job_id);
    if not _batch_recover.keep_item and x.queue_job_id is not null then
        perform pgbatch._batch_retire_item(x.queue_job_id, _batch_recover.reason);
    end if;

    if x.status = 'STOPPING' then
        return pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED',
                                     format('stopped: the worker was lost while stopping (%s)', _batch_recover.reason),
                                     'recovered', null, 'STOPPED', v_detail);
    end if;
    if x.status = 'PAUSING' then
        update pgbatch.step_execution s
           set status = 'PAUSED', last_updated = v_now, version = s.version + 1
         where s.job_execution_id = x.id and s.status = 'STARTED';
        update pgbatch.job_execution e
           set status = 'PAUSED', lease_owner = null, lease_boot_id = null, lease_expires_at = null,
               pause_reason = coalesce(e.pause_reason, 'paused: the worker was lost while pausing'),
               last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, null, 'recovered', x.status, 'PAUSED', null, v_detail);
        perform pgbatch._batch_notify_parked(x.id);
        return 'PAUSED';
    end if;

    v_max := coalesce((v_def ->> 'max_recoveries')::integer, 5);
    if x.recovery_count + 1 > v_max then
        return pgbatch._batch_finish(x.id, 'FAILED', 'RECOVERY_LIMIT',
                                     format('the worker was lost %s times (max_recoveries %s); last: %s',
                                            x.recovery_count + 1, v_max, _batch_recover.reason),
                                     'recovered', null, 'FAILED', v_detail || '{"limit": true}');
    end if;
    if x.recovery_policy = 'ResumeForward' then
        update pgbatch.job_execution e
           set status = 'STARTING', lease_owner = null, lease_boot_id = null, lease_expires_at = null,
               recovery_count = e.recovery_count + 1, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        if not _batch_recover.keep_item then
            v_detail := v_detail || jsonb_build_object('next_job_id', pgbatch._batch_enqueue(x.id, x.current_step));
        end if;
        perform pgbatch._batch_event(x.id, null, 'recovered', x.status, 'STARTING', null, v_detail);
        return 'STARTING';
    end if;

    perform pgbatch._batch_finish(x.id, 'FAILED', 'HOST_LOST',
                                  format('the worker was lost (%s); recovery policy %s', _batch_recover.reason,
                                         x.recovery_policy),
                                  'recovered', null, 'FAILED', v_detail);
    if x.recovery_policy = 'Fail' then
        return 'FAILED';
    end if;
    select d.ord - 1 into v_cur
      from jsonb_array_elements(v_def -> 'steps') with ordinality d(value, ord)
     where d.value ->> 'name' = x.current_step;
    if x.recovery_policy = 'RestartAll' then
        v_from := 0;
    else
        select d.ord - 1 into v_from
          from jsonb_array_elements(v_def -> 'steps') with ordinality d(value, ord)
         where d.value ->> 'name' = substr(x.recovery_policy, 13);
        v_from := least(coalesce(v_from, 0), coalesce(v_cur, 0));
    end if;
    v_new := pgbatch._batch_relaunch(x, v_from, x.recovery_count + 1, _batch_recover.reason);
    update pgbatch.execution_event ev
       set detail = ev.detail || jsonb_build_object('new_execution_id', v_new)
     where ev.id = (select max(e2.id) from pgbatch.execution_event e2 where e2.job_execution_id = x.id);
    return 'FAILED';
end
$$;
