-- Moves a job that has left the live table (the caller deleted it) into the
-- archive as done, dead or cancelled, and counts it for queue_stats().
create or replace function pgbatch._archive(r pgbatch.job, state text, token uuid, result jsonb,
                                            last_error jsonb default null)
returns void
language plpgsql
as $$
begin
    insert into pgbatch.job_archive
        (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
         created_at, finished_at, claim_token, claimed_by, last_error, result, seq)
    values
        (r.id, r.queue, r.payload, r.priority, r.run_at, _archive.state, r.attempt, r.max_attempts,
         r.dedup_key, r.created_at, pgbatch.now(), token, r.claimed_by,
         coalesce(last_error, r.last_error), result, r.seq);
    insert into pgbatch.queue_count (queue, done, dead, cancelled)
    values (r.queue,
            (_archive.state = 'done')::integer,
            (_archive.state = 'dead')::integer,
            (_archive.state = 'cancelled')::integer);
end
$$;
