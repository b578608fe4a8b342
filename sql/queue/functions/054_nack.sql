-- nack: the attempt failed. Returns the job to pending at `retry_at`
-- (default: now + backoff(attempt, backoff_base, backoff_cap), exponential
-- with jitter) and stores `error` (any JSON, e.g. {"type", "message",
-- "traceback"}) as last_error, with the earlier attempts' errors under
-- "history" (newest first, at most limits() error_history_length, without
-- tracebacks; see _with_error_history). When the attempt was the last allowed one
-- (attempt >= max_attempts) the job is dead-lettered instead; a job whose
-- cancellation was requested while it ran ends cancelled. Returns the state
-- the job is left in: 'pending', 'dead' or 'cancelled'. ClaimLost (PB001)
-- when the claim is gone; a retry with the same token returns the first
-- call's answer. Refused (changing nothing): an error over limits()
-- max_error_bytes (ValueTooLarge, PB012), a retry_at that is not finite or
-- too far from now (InvalidTime, PB013), a NULL, negative or too large
-- backoff_base or backoff_cap (InvalidArgument, PB007).
create or replace function pgbatch.nack(
    job_id       uuid,
    claim_token  uuid,
    error        jsonb       default null,
    retry_at     timestamptz default null,
    backoff_base interval    default '1 second',
    backoff_cap  interval    default '1 hour'
)
returns text
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_now   timestamptz := pgbatch.now();
    v_state text;
    v_at    timestamptz;
begin
    if pg_column_size(error) > pgbatch._limit('max_error_bytes') then
        perform pgbatch._raise('PB012', format('error too large: %s bytes, at most %s allowed',
                                               pg_column_size(error), pgbatch._limit('max_error_bytes')));
    end if;
    perform pgbatch._check(pgbatch._time_problem('retry_at', retry_at, v_now));
    perform pgbatch._check(pgbatch._backoff_problem(backoff_base, backoff_cap));
    select * into r from pgbatch.job j
     where j.id = nack.job_id and j.claim_token = nack.claim_token
       for update;
    if not found then
        return pgbatch._settled_result(job_id, claim_token, 'nack') ->> 'state';
    end if;
    perform pgbatch._durable_commit();
    if r.cancel_requested or r.attempt >= r.max_attempts then
        v_state := case when r.cancel_requested then 'cancelled' else 'dead' end;
        delete from pgbatch.job j where j.id = r.id;
        perform pgbatch._archive(r, v_state, claim_token,
                                 jsonb_build_object('op', 'nack', 'state', v_state),
                                 pgbatch._with_error_history(error, r.last_error));
        return v_state;
    end if;
    v_at := coalesce(retry_at, v_now + pgbatch.backoff(r.attempt, backoff_base, backoff_cap));
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, run_at = v_at,
           last_error = pgbatch._with_error_history(error, r.last_error),
           settled_token = nack.claim_token,
           settled_result = '{"op": "nack", "state": "pending"}'
     where j.id = r.id;
    if v_at <= v_now then
        perform pgbatch._announce(r.queue, 1);
    else
        perform pgbatch._announce(r.queue, 0, v_at);
    end if;
    return 'pending';
end
$$;
