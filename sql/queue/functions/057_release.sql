-- release: gives a claim back without consuming an attempt (graceful worker
-- shutdown): the job is pending again at once, its attempt count restored.
-- A job whose cancellation was requested ends cancelled instead.
-- ClaimLost (PB001) when the claim is gone; idempotent for the same token.
create or replace function pgbatch.release(job_id uuid, claim_token uuid)
returns void
language plpgsql
as $$
declare
    v_queue     text;
    v_cancelled boolean;
    r           pgbatch.job;
begin
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, attempt = greatest(j.attempt - 1, 0),
           settled_token = release.claim_token, settled_result = '{"op": "release"}'
     where j.id = release.job_id and j.claim_token = release.claim_token
    returning j.queue, j.cancel_requested into v_queue, v_cancelled;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'release');
        return;
    end if;
    if v_cancelled then
        -- cancellation was requested while it ran: it ends cancelled
        delete from pgbatch.job j where j.id = release.job_id returning j.* into r;
        perform pgbatch._archive(r, 'cancelled', claim_token, '{"op": "release"}');
        return;
    end if;
    perform pgbatch._announce(v_queue, 1);
end
$$;
