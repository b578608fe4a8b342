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
