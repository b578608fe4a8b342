-- Settles job_ids[i] with claim_tokens[i] (acks without effects) set-wise in
-- one statement: delete the live rows the tokens hold, archive them as done
-- (_archive_row), count them. Returns the 1-based positions of the entries
-- that are not acked by their token (in order; NULL when all are). An entry
-- whose token acked the job in an earlier call (a retry) counts as acked. The
-- caller settles the rest one by one with ack() (ClaimLost or JobNotFound) and
-- has restored durable commit. Shared by ack_ids and ack_many.
-- When an archived record already holds one of the ids (left by an older
-- pgbatch that let a follow-up reuse its job's id) the statement is undone
-- and every entry is returned, so each is settled on its own by ack(), whose
-- _archive replaces that record: the batch never fails as a whole.
-- The plan is pinned, because the live table's statistics swing between
-- empty and full (autoanalyze may sample it at a quiet moment), and a plan
-- made while it looked empty would walk the whole table for every entry:
-- the live rows are found by `id = any(job_ids)` (one probe of job_pkey per
-- entry; seq scans off), and paired with their entries by a hash join
-- (nested loops and merge joins off), so a batch costs O(entries) whatever
-- the estimates.
create or replace function pgbatch._ack_plain(job_ids uuid[], claim_tokens uuid[])
returns integer[]
language plpgsql
set enable_seqscan = off
set enable_nestloop = off
set enable_mergejoin = off
as $$
declare
    v_now    timestamptz := pgbatch.now();
    v_acked  bigint;
    v_missed integer[];
begin
    begin
        with del as (
            delete from pgbatch.job j
             using unnest(job_ids, claim_tokens) as e(id, tok)
             where j.id = any(job_ids) and j.id = e.id and j.claim_token = e.tok
            returning j
        ), arch as (
            insert into pgbatch.job_archive
            select (pgbatch._archive_row(d.j, 'done', (d.j).claim_token, '{"op": "ack", "ids": []}',
                                         null, v_now)).*
              from del d
            returning queue
        ), counted as (
            insert into pgbatch.queue_count (queue, done)
            select a.queue, count(*) from arch a group by a.queue
            returning 1
        )
        select count(*) into v_acked from arch;
    exception when unique_violation then
        return array(select generate_series(1, cardinality(job_ids)));
    end;
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
