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
