-- Settles job_ids[i] with claim_tokens[i] (acks without effects) set-wise in
-- one statement: delete the live rows the tokens hold, archive them as done,
-- count them. Returns the 1-based positions of the entries it did not settle
-- (in order; NULL when it settled all): their token does not hold the job,
-- or already settled it. The caller classifies those (_settled_result) and
-- has restored durable commit. Shared by ack_ids and ack_many.
create or replace function pgbatch._ack_plain(job_ids uuid[], claim_tokens uuid[])
returns integer[]
language plpgsql
as $$
declare
    v_now    timestamptz := pgbatch.now();
    v_missed integer[];
begin
    with del as (
        delete from pgbatch.job j
         using unnest(job_ids, claim_tokens) as e(id, tok)
         where j.id = e.id and j.claim_token = e.tok
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
        returning id, claim_token, queue
    ), counted as (
        insert into pgbatch.queue_count (queue, done)
        select a.queue, count(*) from arch a group by a.queue
        returning 1
    )
    select array_agg(e.ord order by e.ord) into v_missed
      from unnest(job_ids, claim_tokens) with ordinality as e(id, tok, ord)
     where not exists (select 1 from arch a where a.id = e.id and a.claim_token = e.tok);
    return v_missed;
end
$$;
