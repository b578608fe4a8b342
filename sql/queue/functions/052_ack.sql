-- ack: marks a claimed job done and applies `effects` (see _apply_effects:
-- follow-up enqueues, kv_put, kv_delete) in the same transaction: all or
-- nothing. Returns the follow-up job ids. ClaimLost (PB001) when the claim is
-- gone (lease reaped, token stale); nothing is applied then. A retry with the
-- token that already acked the job returns the first call's ids. A follow-up
-- may not reuse the acked job's id (DuplicateJobId, PB002): like any id of a
-- live or archived job, it is refused before anything is applied.
create or replace function pgbatch.ack(job_id uuid, claim_token uuid, effects jsonb default null)
returns uuid[]
language plpgsql
as $$
declare
    r     pgbatch.job;
    v_ids uuid[] := '{}';
begin
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
    perform pgbatch._archive(r, 'done', claim_token, jsonb_build_object('op', 'ack', 'ids', to_jsonb(v_ids)));
    return v_ids;
end
$$;
