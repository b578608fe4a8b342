-- enqueue: inserts one job and returns its id.
--   queue         any non-empty text up to limits() max_queue_name_length
--                 characters, not only whitespace
--   payload       any JSON value (at most max_payload_bytes())
--   run_at        not claimable before this time (default: now); finite and
--                 within limits() max_run_at_offset_seconds of now
--   priority      higher runs first
--   dedup_key     while a live (pending or claimed) job of this queue has the
--                 same key, returns that job's id and inserts nothing; at
--                 most limits() max_dedup_key_length characters
--   max_attempts  claims allowed before the job is dead-lettered (>= 1;
--                 default limits() default_max_attempts)
--   id_override   the job's id; an id already used by a live or archived job
--                 raises DuplicateJobId (PB002)
-- A job that is claimable now is announced on the queue's channel; a job due
-- later sends a due-time hint (see _announce). Validation and insert are
-- _insert_jobs', shared with enqueue_many and ack effects.
create or replace function pgbatch.enqueue(
    queue        text,
    payload      jsonb       default '{}',
    run_at       timestamptz default null,
    priority     integer     default 0,
    dedup_key    text        default null,
    max_attempts integer     default (pgbatch.limits() ->> 'default_max_attempts')::integer,
    id_override  uuid        default null
)
returns uuid
language plpgsql
as $$
begin
    perform pgbatch._durable_commit();
    return (pgbatch._insert_jobs(array[id_override], array[queue], array[payload], array[run_at],
                                 array[priority], array[dedup_key], array[max_attempts],
                                 numbered => false))[1];
end
$$;
