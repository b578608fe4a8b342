-- Settles job_ids[i] with claim_tokens[i] (acks without effects) set-wise in
-- one statement: delete the live rows the tokens hold, archive them as done,
-- count them. Returns the 1-based positions of the entries that are not
-- acked by their token (in order; NULL when all are). An entry whose token
-- acked the job in an earlier call (a retry) counts as acked. The caller
-- settles the rest one by one with ack() (which acks a duplicate whose token
-- does hold the job, and raises ClaimLost or JobNotFound otherwise) and has
-- restored durable commit. Shared by ack_ids and ack_many.
-- No join with the live table: its statistics swing between empty and full
-- (autoanalyze may sample it at a quiet moment), and a join planned while it
-- looked empty walks the whole table for every entry. `id = any(...)` is
-- one probe of job_pkey per entry whatever the estimates (seq scans are off
-- here); the pair check looks the entry's token up by position. For
-- duplicate ids the first entry's token is checked, and the others come back
-- as misses for the caller's one-by-one path.
create or replace function pgbatch._ack_plain(job_ids uuid[], claim_tokens uuid[])
returns integer[]
language plpgsql
set enable_seqscan = off
as $$
declare
    v_now    timestamptz := pgbatch.now();
    v_acked  bigint;
    v_missed integer[];
begin
    with del as (
        delete from pgbatch.job j
         where j.id = any(job_ids)
           and j.claim_token = claim_tokens[array_position(job_ids, j.id)]
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
    select count(*) into v_acked from arch;
    if v_acked = cardinality(job_ids) then
        return null;
    end if;
    -- some entry missed (a lost claim, a retry, a duplicate): find which
    select array_agg(e.ord order by e.ord) into v_missed
      from unnest(job_ids, claim_tokens) with ordinality as e(id, tok, ord)
     where (select a.result ->> 'op' from pgbatch.job_archive a
             where a.id = e.id and a.claim_token = e.tok) is distinct from 'ack';
    return v_missed;
end
$$;
