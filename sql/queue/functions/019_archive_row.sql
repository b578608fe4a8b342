-- The archive record of a job that leaves the live table: the one place
-- that maps pgbatch.job onto pgbatch.job_archive (used by _archive and, set-wise,
-- by _ack_plain). `last_error` NULL keeps the job's own.
create or replace function pgbatch._archive_row(r pgbatch.job, state text, token uuid, result jsonb,
                                                last_error jsonb, finished_at timestamptz)
returns pgbatch.job_archive
language sql
immutable
parallel safe
as $$
    select row(r.id, r.queue, r.payload, r.priority, r.run_at, state, r.attempt, r.max_attempts,
               r.dedup_key, r.created_at, finished_at, token, r.claimed_by,
               coalesce(last_error, r.last_error), result, r.seq)::pgbatch.job_archive
$$;
