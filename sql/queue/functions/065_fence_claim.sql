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
