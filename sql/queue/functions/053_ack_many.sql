-- ack_many: settles many claims in one transaction. `acks` is a JSON array of
-- {"job_id": uuid, "claim_token": uuid, "effects": {...}?}. Each entry
-- succeeds or fails on its own, without aborting the others; one outcome row
-- per entry, in order: status 'acked' (with follow_ups), 'claim_lost'
-- (PB001), 'not_found' (PB003) or 'error' (any other SQLSTATE, e.g. PB008 for
-- malformed effects; that entry's effects are not applied and its job stays
-- claimed). Entries without effects are settled set-wise in one statement
-- (_ack_plain, as in ack_ids).
create or replace function pgbatch.ack_many(acks jsonb)
returns setof pgbatch.ack_outcome
language plpgsql
as $$
declare
    v_ids    uuid[];
    v_toks   uuid[];
    v_eff    boolean[];
    v_plain  integer[];
    v_missed integer[];
    v_hit    boolean[];
    v_fids   uuid[];
    k        integer;
begin
    if acks is null or jsonb_typeof(acks) <> 'array' then
        perform pgbatch._raise('PB007', 'acks must be a JSON array of {"job_id", "claim_token", "effects"?} objects');
    end if;
    if exists (select 1 from jsonb_array_elements(acks) x
                where jsonb_typeof(x) <> 'object'
                   or jsonb_typeof(x -> 'job_id') is distinct from 'string'
                   or jsonb_typeof(x -> 'claim_token') is distinct from 'string') then
        perform pgbatch._raise('PB007', 'each ack must be an object with string "job_id" and "claim_token"');
    end if;
    perform pgbatch._durable_commit();

    begin
        select coalesce(array_agg((x.a ->> 'job_id')::uuid order by x.ord), '{}'),
               coalesce(array_agg((x.a ->> 'claim_token')::uuid order by x.ord), '{}'),
               coalesce(array_agg(coalesce(x.a -> 'effects', 'null'::jsonb)
                                  not in ('null'::jsonb, '{}'::jsonb) order by x.ord), '{}')
          into v_ids, v_toks, v_eff
          from jsonb_array_elements(acks) with ordinality as x(a, ord);
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid ack entry: ' || sqlerrm);
    end;

    -- entries without effects: one set-wise statement; v_hit marks those it settled
    v_plain := array(select s from generate_subscripts(v_ids, 1) s where not v_eff[s] order by s);
    v_missed := pgbatch._ack_plain(
        array(select v_ids[p] from unnest(v_plain) with ordinality u(p, o) order by o),
        array(select v_toks[p] from unnest(v_plain) with ordinality u(p, o) order by o));
    v_hit := array_fill(false, array[cardinality(v_ids)]);
    foreach k in array v_plain loop
        v_hit[k] := true;
    end loop;
    foreach k in array coalesce(v_missed, '{}') loop
        v_hit[v_plain[k]] := false;
    end loop;

    -- the rest one by one, each in its own subtransaction: entries with effects,
    -- and the plain ones the statement missed (a retry, or a lost claim)
    for k in 1 .. cardinality(v_ids) loop
        if v_hit[k] then
            return next row(v_ids[k], 'acked', null::text, null::text, '{}'::uuid[])::pgbatch.ack_outcome;
            continue;
        end if;
        begin
            v_fids := pgbatch.ack(v_ids[k], v_toks[k], acks -> (k - 1) -> 'effects');
            return next row(v_ids[k], 'acked', null::text, null::text, v_fids)::pgbatch.ack_outcome;
        exception
            when sqlstate 'PB001' then
                return next row(v_ids[k], 'claim_lost', 'PB001', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when sqlstate 'PB003' then
                return next row(v_ids[k], 'not_found', 'PB003', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when others then
                return next row(v_ids[k], 'error', sqlstate, sqlerrm, null::uuid[])::pgbatch.ack_outcome;
        end;
    end loop;
end
$$;
