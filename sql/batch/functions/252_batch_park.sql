-- Parks execution `execution_id` (its row locked by the caller) PAUSED
-- (T9, T10, T11, a worker's shutdown with on_shutdown = 'pause'): the step
-- that runs (STARTED) is PAUSED at its last committed checkpoint, the lease
-- is cleared, pause_reason and resume_at are set, one event `paused`
-- (from_status the execution's status, detail: step, reason, resume_at and
-- `detail`), and pgbatch_batch_parked is notified. The work item is the
-- caller's business (acked without follow-up by the worker, cancelled by the
-- operator). Returns 'PAUSED'.
create or replace function pgbatch._batch_park(execution_id bigint, reason text, resume_at timestamptz,
    request_id text default null, detail jsonb default null)
returns text
language plpgsql
as $$
declare
    x     pgbatch.job_execution;
    v_now timestamptz := pgbatch.now();
    v_id  bigint;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_park.execution_id;
    update pgbatch.step_execution s
       set status = 'PAUSED', last_updated = v_now, version = s.version + 1
     where s.job_execution_id = x.id and s.status = 'STARTED'
    returning s.id into v_id;
    update pgbatch.job_execution e
       set status = 'PAUSED', pause_reason = _batch_park.reason, resume_at = _batch_park.resume_at,
           lease_owner = null, lease_boot_id = null, lease_expires_at = null,
           last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, v_id, 'paused', x.status, 'PAUSED', _batch_park.request_id,
                                 jsonb_build_object('step', x.current_step, 'reason', _batch_park.reason,
                                                    'resume_at', _batch_park.resume_at)
                                 || coalesce(_batch_park.detail, '{}'));
    perform pgbatch._batch_notify_parked(x.id);
    return 'PAUSED';
end
$$;
