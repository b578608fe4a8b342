-- Notifies channel pgbatch_batch_parked that execution `execution_id` parked
-- (PAUSED or AWAITING_APPROVAL), in the parking transaction (the
-- notification is delivered when it commits). The payload is the JSON object
-- pgbatch.batch.parking.parse_parked reads: execution_id, job_name, status,
-- step (the step it parked in), reason (the pause reason), gate (the gate's
-- name when AWAITING_APPROVAL, else null) and resume_at (ISO 8601 or null).
create or replace function pgbatch._batch_notify_parked(execution_id bigint)
returns void
language plpgsql
as $$
declare
    x pgbatch.job_execution;
begin
    select * into x from pgbatch.job_execution e where e.id = _batch_notify_parked.execution_id;
    if not found then
        return;
    end if;
    perform pg_notify('pgbatch_batch_parked', jsonb_build_object(
        'execution_id', x.id,
        'job_name', (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
        'status', x.status,
        'step', x.current_step,
        'reason', case when x.status = 'PAUSED' then x.pause_reason end,
        'gate', case when x.status = 'AWAITING_APPROVAL' then x.current_step end,
        'resume_at', case when x.status = 'PAUSED' then x.resume_at end)::text);
end
$$;
