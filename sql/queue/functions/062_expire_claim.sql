-- Ends a claim that its worker can no longer settle (lease expired, or the
-- node restarted): the attempt it consumed counts. The job goes back to
-- pending now, or to dead when that was its last attempt, or to cancelled
-- when cancellation was requested. The caller holds the row lock. Returns the
-- new state.
create or replace function pgbatch._expire_claim(r pgbatch.job, reason text)
returns text
language plpgsql
as $$
declare
    v_error jsonb := jsonb_build_object('type', 'LeaseExpired', 'message', reason,
                                        'worker', r.claimed_by, 'attempt', r.attempt);
begin
    if r.cancel_requested or r.attempt >= r.max_attempts then
        delete from pgbatch.job j where j.id = r.id;
        perform pgbatch._archive(r, case when r.cancel_requested then 'cancelled' else 'dead' end,
                                 r.claim_token, '{"op": "reap"}', v_error);
        return case when r.cancel_requested then 'cancelled' else 'dead' end;
    end if;
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, run_at = pgbatch.now(), last_error = v_error
     where j.id = r.id;
    return 'pending';
end
$$;
