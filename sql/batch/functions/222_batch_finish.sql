-- Ends execution `execution_id` (its row locked by the caller) in terminal
-- status `status` (COMPLETED, FAILED, STOPPED, ABANDONED): end_time, exit
-- code and message, lease cleared, steps that had not ended take
-- `step_status` (default: the same status), PENDING approvals EXPIRED, one
-- event `kind`. Returns the status.
create or replace function pgbatch._batch_finish(execution_id bigint, status text, exit_code text,
    exit_message text, kind text, request_id text default null, step_status text default null,
    detail jsonb default null)
returns text
language plpgsql
as $$
declare
    v_from text;
    v_now  timestamptz := pgbatch.now();
begin
    select e.status into v_from from pgbatch.job_execution e where e.id = _batch_finish.execution_id;
    update pgbatch.job_execution e
       set status = _batch_finish.status, exit_code = _batch_finish.exit_code,
           exit_message = coalesce(_batch_finish.exit_message, e.exit_message),
           end_time = coalesce(e.end_time, v_now), lease_owner = null, lease_boot_id = null,
           lease_expires_at = null, last_updated = v_now, version = e.version + 1
     where e.id = _batch_finish.execution_id;
    update pgbatch.step_execution s
       set status = coalesce(_batch_finish.step_status, _batch_finish.status),
           exit_code = coalesce(_batch_finish.step_status, _batch_finish.status),
           end_time = coalesce(s.end_time, v_now), last_updated = v_now, version = s.version + 1
     where s.job_execution_id = _batch_finish.execution_id
       and (s.status in ('STARTING', 'STARTED', 'PAUSED', 'UNKNOWN')
            or (_batch_finish.status = 'ABANDONED' and s.status <> 'COMPLETED'));
    update pgbatch.approval a
       set status = 'EXPIRED', decided_at = v_now
     where a.job_execution_id = _batch_finish.execution_id and a.status = 'PENDING';
    perform pgbatch._batch_event(_batch_finish.execution_id, null, _batch_finish.kind, v_from,
                                 _batch_finish.status, _batch_finish.request_id, _batch_finish.detail);
    return _batch_finish.status;
end
$$;
