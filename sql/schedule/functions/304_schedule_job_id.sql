-- The id of the queue job that the fire (schedule_id, source, fire_at) of a
-- queue-target schedule enqueues: derived from the triple, so a retried
-- launch can never enqueue a second job, and known before the launch (the
-- ledger row is written with it). STABLE (to_char is): inlined into its callers.
create or replace function pgbatch._schedule_job_id(schedule_id text, source text, fire_at timestamptz)
returns uuid
language sql
stable
parallel safe
as $$
    select md5('pgbatch.schedule|' || schedule_id || '|' || source || '|'
               || to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::uuid
$$;
