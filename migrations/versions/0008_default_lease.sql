-- pgbatch migration 0008_default_lease: the default lease of claim, renew_lease
-- and fence_claim (30 seconds, unchanged) is read from pgbatch.limits()
-- ("default_lease_seconds", new), like every other default and limit, so SQL and
-- pgbatch/_limits.py have one source for it. Only function definitions change.
-- FROZEN: never edit this file after release; 0008_default_lease.py pins its sha256.

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
        "max_node_id_length": 200,
        "max_node_info_bytes": 65536
    }'::jsonb
$$;

-- claim: claims up to max_jobs due jobs of one queue in one statement
-- (FOR UPDATE SKIP LOCKED: claimers never wait on each other's rows). All
-- share one lease and one transaction; each gets a fresh random claim_token,
-- the fence every settlement checks. Returns them in claim order: priority
-- descending, then run_at, then enqueue order. A paused queue yields nothing.
-- worker_id is recorded as claimed_by (the node registry releases a restarted
-- node's claims by it). Commits without waiting for the WAL flush, unless
-- the caller's transaction already wrote something (see _relax_commit).
-- The picked rows are updated through job_pkey (`id = any(...)`, seq scans
-- off), never through a join with the live table: its statistics swing
-- between empty and full, and a join planned while it looked empty would
-- walk the whole table for every claimed job.
-- Keep claim transactions short: a claim that meets a row another claimer
-- took while it ran keeps a lock on that row (READ COMMITTED re-check) until
-- its transaction ends, and an ack of that job waits for it meanwhile.
-- The lease (default limits() default_lease_seconds) is limits()
-- min_lease_seconds to max_lease_seconds, worker_id at
-- most max_node_id_length characters (InvalidArgument, PB007).
create or replace function pgbatch.claim(
    queue     text,
    max_jobs  integer  default 1,
    lease     interval default make_interval(secs => (pgbatch.limits() ->> 'default_lease_seconds')::float8),
    worker_id text     default null
)
returns setof pgbatch.claimed_job
language plpgsql
set enable_seqscan = off
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
begin
    perform pgbatch._check_queue(claim.queue);
    if claim.max_jobs is null or claim.max_jobs < 1 then
        perform pgbatch._raise('PB007', format('invalid max_jobs: %s, must be at least 1', coalesce(claim.max_jobs::text, 'NULL')));
    end if;
    perform pgbatch._check(pgbatch._lease_problem(claim.lease));
    if length(claim.worker_id) > pgbatch._limit('max_node_id_length') then
        perform pgbatch._raise('PB007', format('invalid worker_id: %s characters, at most %s allowed',
                                               length(claim.worker_id), pgbatch._limit('max_node_id_length')));
    end if;
    if exists (select 1 from pgbatch.queue q where q.name = claim.queue and q.paused) then
        return;
    end if;
    perform pgbatch._relax_commit();
    return query
    with picked as (
        select j.id
          from pgbatch.job j
         where j.queue = claim.queue
           and j.state = 'pending'
           and j.run_at <= v_now
         order by j.priority desc, j.run_at, j.seq
         limit claim.max_jobs
           for update skip locked
    ), claimed as (
        update pgbatch.job j
           set state = 'claimed',
               claim_token = gen_random_uuid(),
               attempt = j.attempt + 1,
               claimed_by = claim.worker_id,
               claimed_at = v_now,
               lease_expires_at = v_now + claim.lease
         where j.id = any(array(select p.id from picked p))
        returning j.id, j.queue, j.payload, j.priority, j.attempt, j.max_attempts, j.run_at,
                  j.claim_token, j.lease_expires_at, j.created_at, j.dedup_key, j.last_error, j.seq
    )
    select c.id, c.queue, c.payload, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.claim_token, c.lease_expires_at, c.created_at, c.dedup_key, c.last_error
      from claimed c
     order by c.priority desc, c.run_at, c.seq;
end
$$;

-- renew_lease: extends a claim's lease to now + `lease` and returns the new
-- expiry. Works after the lease expired as long as nobody reaped or
-- re-claimed the job. ClaimLost (PB001) when the claim is gone; JobCancelled
-- (PB009) when cancel_job() was called for the job: the worker should stop
-- and nack it (it then ends cancelled). Commits without waiting for the WAL
-- flush (a lost renewal can only cause a redelivery). The lease is
-- limits() min_lease_seconds to max_lease_seconds (InvalidArgument, PB007);
-- default limits() default_lease_seconds.
create or replace function pgbatch.renew_lease(job_id uuid, claim_token uuid, lease interval default make_interval(secs => (pgbatch.limits() ->> 'default_lease_seconds')::float8))
returns timestamptz
language plpgsql
as $$
declare
    v_expires   timestamptz;
    v_cancelled boolean;
begin
    perform pgbatch._check(pgbatch._lease_problem(lease));
    perform pgbatch._relax_commit();
    update pgbatch.job j
       set lease_expires_at = pgbatch.now() + renew_lease.lease
     where j.id = renew_lease.job_id and j.claim_token = renew_lease.claim_token
    returning j.lease_expires_at, j.cancel_requested into v_expires, v_cancelled;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'renew');
    end if;
    if v_cancelled then
        perform pgbatch._raise('PB009', format('job %s was cancelled', job_id),
                               'stop working on it and nack it; it ends cancelled');
    end if;
    return v_expires;
end
$$;

-- fence_claim: the fence of a transaction that a worker runs inside its claim
-- (a chunk commit, a handler's own writes): in the caller's transaction,
-- locks the job's row, checks that `claim_token` still holds it and extends
-- the lease to now + `lease`. Call it last, right before COMMIT: the row lock
-- is held until the transaction ends, so the claim cannot be reaped, re-claimed
-- or settled in between, and the caller's writes commit only together with a
-- live claim. ClaimLost (PB001) when the claim is gone (reaped, re-claimed,
-- settled) and JobNotFound (PB003) when no such job exists: the caller then
-- rolls back and nothing it wrote is kept. Unlike renew_lease it never lowers
-- synchronous_commit (it restores a durability that a claim earlier in the
-- same transaction relaxed): the caller's writes commit durably. Returns the
-- new expiry and whether cancel_job() was called for the job (the caller
-- decides whether to stop; the transaction is not refused). The lease is
-- limits() min_lease_seconds to max_lease_seconds (InvalidArgument, PB007),
-- as for renew_lease; default limits() default_lease_seconds.
create or replace function pgbatch.fence_claim(job_id uuid, claim_token uuid, lease interval default make_interval(secs => (pgbatch.limits() ->> 'default_lease_seconds')::float8))
returns table (expires_at timestamptz, cancel_requested boolean)
language plpgsql
as $$
begin
    perform pgbatch._check(pgbatch._lease_problem(lease));
    perform pgbatch._durable_commit();
    return query
    update pgbatch.job j
       set lease_expires_at = pgbatch.now() + fence_claim.lease
     where j.id = fence_claim.job_id and j.claim_token = fence_claim.claim_token
    returning j.lease_expires_at, j.cancel_requested;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'fence');
    end if;
end
$$;

-- Re-apply the privileges step: create or replace resets each function's
-- security definer and search_path (docs/roles.md).
select pgbatch._apply_privileges();
