-- pgbatch migration 0017_job_results: a task's return value kept with its
-- done job, and a bounded history of earlier attempts' errors. limits() gains
-- max_result_bytes and error_history_length; ack takes "return_value" in its
-- effects (kept as the archived result's "return_value", refused over
-- max_result_bytes); nack and dead_letter keep the earlier errors under
-- last_error "history" (_with_error_history, new). ack_ids and _ack_plain are
-- unchanged: a plain ack costs what it did.
-- FROZEN: never edit this file after release; 0017_job_results.py pins its sha256.

-- ==== queue/functions/004_limits.sql ====
-- limits: every default and limit of the SQL API, in one place (docs/limits.md).
-- Functions read them from here (immutable: folded into each plan once), and
-- pgbatch/_limits.py mirrors them for Python (a test keeps the two equal).
-- Lengths are in characters, sizes in bytes (of jsonb: its stored form),
-- durations in seconds.
--   default_max_attempts         enqueue's max_attempts when none is given
--   default_lease_seconds        claim / renew_lease / fence_claim: the lease
--                                when none is given
--   max_queue_name_length        queue names: 1 .. this many characters, not blank
--   max_payload_bytes            a job's payload
--   min_lease_seconds            claim / renew_lease: shortest lease
--   max_lease_seconds            claim / renew_lease: longest lease (1 day)
--   max_run_at_offset_seconds    run_at, retry_at, requeue run_at, backoff base
--                                and cap: at most this far from now (10 years)
--   max_retention_seconds        sweep_retention ages (100 years)
--   max_dedup_key_length         dedup keys (well under the btree entry limit)
--   max_kv_key_length            kv keys (well under the btree entry limit)
--   max_kv_value_bytes           one kv value
--   max_error_bytes              nack's error, dead_letter's reason
--   max_result_bytes             a task's return value (ack effects'
--                                "return_value"), refused above it
--   error_history_length         how many earlier attempts' errors a job keeps
--                                (last_error "history", newest first)
--   max_node_id_length           node ids and claim's worker_id
--   max_node_info_bytes          register_node's info
create or replace function pgbatch.limits()
returns jsonb
language sql
immutable
parallel safe
as $$
    select '{
        "default_max_attempts": 20,
        "default_lease_seconds": 30,
        "max_queue_name_length": 128,
        "max_payload_bytes": 1048576,
        "min_lease_seconds": 1,
        "max_lease_seconds": 86400,
        "max_run_at_offset_seconds": 315576000,
        "max_retention_seconds": 3155760000,
        "max_dedup_key_length": 256,
        "max_kv_key_length": 256,
        "max_kv_value_bytes": 1048576,
        "max_error_bytes": 65536,
        "max_result_bytes": 65536,
        "error_history_length": 10,
        "max_node_id_length": 200,
        "max_node_info_bytes": 65536
    }'::jsonb
$$;

-- ==== queue/functions/049_with_error_history.sql ====
-- The last_error to store for a failed attempt: `error` with "history", the
-- errors of earlier attempts, newest first, at most limits()
-- error_history_length of them, each without its "traceback" (and without
-- its own "history"). `previous` is the job's last_error so far. An `error`
-- that is not a JSON object (nor NULL) is stored as given, without history;
-- a NULL error after earlier ones stores {"history": [...]}.
create or replace function pgbatch._with_error_history(error jsonb, previous jsonb)
returns jsonb
language sql
immutable
parallel safe
as $$
    select case
        when previous is null or jsonb_typeof(previous) <> 'object'
             or (error is not null and jsonb_typeof(error) <> 'object') then error
        else coalesce(error - 'history', '{}'::jsonb) || jsonb_build_object('history',
            coalesce((select jsonb_agg(h.e order by h.ord)
                        from (select e, ord
                                from jsonb_array_elements(jsonb_build_array(previous - 'history' - 'traceback')
                                                          || coalesce(case when jsonb_typeof(previous -> 'history') = 'array'
                                                                           then previous -> 'history' end, '[]'::jsonb))
                                     with ordinality as x(e, ord)
                               order by ord
                               limit pgbatch._limit('error_history_length')) h), '[]'::jsonb))
    end
$$;

-- ==== queue/functions/052_ack.sql ====
-- ack: marks a claimed job done and applies `effects` (see _apply_effects:
-- follow-up enqueues, kv_put, kv_delete) in the same transaction: all or
-- nothing. Returns the follow-up job ids. ClaimLost (PB001) when the claim is
-- gone (lease reaped, token stale); nothing is applied then. A retry with the
-- token that already acked the job returns the first call's ids. A follow-up
-- may not reuse the acked job's id (DuplicateJobId, PB002): like any id of a
-- live or archived job, it is refused before anything is applied.
-- effects may also hold "return_value" (any JSON but null: the task's return
-- value), kept with the archived job as result -> 'return_value' (read it
-- with get_job/list_jobs). One over limits() max_result_bytes (stored jsonb)
-- is refused (ValueTooLarge, PB012), changing nothing. Plain acks (ack_ids)
-- never carry one.
create or replace function pgbatch.ack(job_id uuid, claim_token uuid, effects jsonb default null)
returns uuid[]
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_ids   uuid[] := '{}';
    v_value jsonb;
    v_done  jsonb;
begin
    if jsonb_typeof(effects) = 'object' and effects ? 'return_value' then
        v_value := effects -> 'return_value';
        effects := effects - 'return_value';
        if pg_column_size(v_value) > pgbatch._limit('max_result_bytes') then
            perform pgbatch._raise('PB012', format('return value too large: %s bytes, at most %s allowed',
                                                   pg_column_size(v_value), pgbatch._limit('max_result_bytes')),
                                   'keep large results elsewhere (kv_put, your own table) and return a reference');
        end if;
    end if;
    delete from pgbatch.job j
     where j.id = ack.job_id and j.claim_token = ack.claim_token
    returning j.* into r;
    if not found then
        return array(select jsonb_array_elements_text(pgbatch._settled_result(job_id, claim_token, 'ack') -> 'ids')::uuid);
    end if;
    perform pgbatch._durable_commit();
    if effects is not null then
        v_ids := pgbatch._apply_effects(effects, r.id);
    end if;
    v_done := jsonb_build_object('op', 'ack', 'ids', to_jsonb(v_ids));
    if v_value is not null and v_value <> 'null'::jsonb then
        v_done := v_done || jsonb_build_object('return_value', v_value);
    end if;
    perform pgbatch._archive(r, 'done', claim_token, v_done);
    return v_ids;
end
$$;

-- ==== queue/functions/054_nack.sql ====
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

-- ==== queue/functions/055_dead_letter.sql ====
-- dead_letter: moves a claimed job to dead (no further attempts), storing
-- `reason` as last_error {"type": "DeadLettered", "message": reason}, with
-- the earlier attempts' errors under "history" (as nack).
-- ClaimLost (PB001) when the claim is gone; idempotent for the same token.
-- A reason over limits() max_error_bytes (in UTF-8) is refused (ValueTooLarge,
-- PB012).
create or replace function pgbatch.dead_letter(job_id uuid, claim_token uuid, reason text default null)
returns void
language plpgsql
as $$
declare
    r pgbatch.job;
begin
    if octet_length(reason) > pgbatch._limit('max_error_bytes') then
        perform pgbatch._raise('PB012', format('reason too large: %s bytes, at most %s allowed',
                                               octet_length(reason), pgbatch._limit('max_error_bytes')));
    end if;
    delete from pgbatch.job j
     where j.id = dead_letter.job_id and j.claim_token = dead_letter.claim_token
    returning j.* into r;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'dead_letter');
        return;
    end if;
    perform pgbatch._durable_commit();
    perform pgbatch._archive(r, 'dead', claim_token, '{"op": "dead_letter"}',
                             pgbatch._with_error_history(
                                 jsonb_build_object('type', 'DeadLettered', 'message', reason),
                                 r.last_error));
end
$$;

select pgbatch._apply_privileges();
