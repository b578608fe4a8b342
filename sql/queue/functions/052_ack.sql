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
