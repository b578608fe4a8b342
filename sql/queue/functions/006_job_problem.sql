-- What is wrong with one job to enqueue, as {sqlstate, message}, or NULL when
-- it is valid: the queue name (PB005), the payload (a JSON value of at most
-- max_payload_bytes, PB006), run_at (NULL or within reach of `now`, PB013),
-- max_attempts (at least 1, PB007) and the dedup key (at most limits()
-- max_dedup_key_length characters, PB012). The one check of every enqueue
-- path (see _insert_jobs); evaluated set-wise, one row per job.
create or replace function pgbatch._job_problem(queue text, payload jsonb, run_at timestamptz,
                                                dedup_key text, max_attempts integer,
                                                now timestamptz)
returns text[]
language sql
stable
parallel safe
as $$
    select coalesce(
        pgbatch._queue_problem(queue),
        case
            when payload is null
                then array['PB006', 'invalid payload: must be a JSON value, not NULL']
            when pg_column_size(payload) > pgbatch.max_payload_bytes()
                then array['PB006', format('payload too large: %s bytes, at most %s allowed',
                                           pg_column_size(payload), pgbatch.max_payload_bytes())]
        end,
        pgbatch._time_problem('run_at', run_at, now),
        case
            when max_attempts is null or max_attempts < 1
                then array['PB007', format('invalid max_attempts: %s, must be at least 1',
                                           coalesce(max_attempts::text, 'NULL'))]
            when length(dedup_key) > pgbatch._limit('max_dedup_key_length')
                then array['PB012', format('dedup_key too long: %s characters, at most %s allowed',
                                           length(dedup_key), pgbatch._limit('max_dedup_key_length'))]
        end)
$$;
