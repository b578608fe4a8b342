-- ack_many: settles many claims in one transaction. `acks` is a JSON array of
-- {"job_id": uuid, "claim_token": uuid, "effects": {...}?}. Each entry
-- succeeds or fails on its own, without aborting the others; one outcome row
-- per entry, in order: status 'acked' (with follow_ups), 'claim_lost'
-- (PB001), 'not_found' (PB003) or 'error' (any other SQLSTATE, e.g. PB008 for
-- malformed effects; that entry's effects are not applied and its job stays
-- claimed). Entries without effects are settled set-wise in one statement.
create or replace function pgbatch.ack_many(acks jsonb)
returns setof pgbatch.ack_outcome
language plpgsql
as $$
declare
    v_now  timestamptz := pgbatch.now();
    v_hit  boolean[];
    v_ids  uuid[];
    ent    record;
    i      integer := 0;
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
        with e as (
            select x.ord, (x.a ->> 'job_id')::uuid as id, (x.a ->> 'claim_token')::uuid as tok,
                   coalesce(x.a -> 'effects', 'null'::jsonb) not in ('null'::jsonb, '{}'::jsonb) as has_effects
              from jsonb_array_elements(acks) with ordinality as x(a, ord)
        ), del as (
            delete from pgbatch.job j
             using e
             where not e.has_effects and j.id = e.id and j.claim_token = e.tok
            returning j.id, j.queue, j.payload, j.priority, j.run_at, j.attempt, j.max_attempts,
                      j.dedup_key, j.created_at, j.claim_token, j.claimed_by, j.last_error
        ), arch as (
            insert into pgbatch.job_archive
                (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
                 created_at, finished_at, claim_token, claimed_by, last_error, result)
            select d.id, d.queue, d.payload, d.priority, d.run_at, 'done', d.attempt, d.max_attempts,
                   d.dedup_key, d.created_at, v_now, d.claim_token, d.claimed_by, d.last_error,
                   '{"op": "ack", "ids": []}'::jsonb
              from del d
            returning queue
        ), counted as (
            insert into pgbatch.queue_count (queue, done)
            select a.queue, count(*) from arch a group by a.queue
            returning 1
        )
        select array_agg(d.id is not null order by e.ord) into v_hit
          from e left join del d on d.id = e.id and d.claim_token = e.tok and not e.has_effects;
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid ack entry: ' || sqlerrm);
    end;

    for ent in select x.a, x.ord from jsonb_array_elements(acks) with ordinality as x(a, ord) order by x.ord loop
        i := i + 1;
        if v_hit[i] then
            return next row((ent.a ->> 'job_id')::uuid, 'acked', null::text, null::text, '{}'::uuid[])::pgbatch.ack_outcome;
            continue;
        end if;
        begin
            v_ids := pgbatch.ack((ent.a ->> 'job_id')::uuid, (ent.a ->> 'claim_token')::uuid, ent.a -> 'effects');
            return next row((ent.a ->> 'job_id')::uuid, 'acked', null::text, null::text, v_ids)::pgbatch.ack_outcome;
        exception
            when sqlstate 'PB001' then
                return next row((ent.a ->> 'job_id')::uuid, 'claim_lost', 'PB001', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when sqlstate 'PB003' then
                return next row((ent.a ->> 'job_id')::uuid, 'not_found', 'PB003', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when others then
                return next row((ent.a ->> 'job_id')::uuid, 'error', sqlstate, sqlerrm, null::uuid[])::pgbatch.ack_outcome;
        end;
    end loop;
end
$$;
