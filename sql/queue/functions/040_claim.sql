-- claim: claims up to max_jobs due jobs of one queue in one statement
-- (FOR UPDATE SKIP LOCKED: claimers never wait on each other's rows). All
-- share one lease and one transaction; each gets a fresh random claim_token,
-- the fence every settlement checks. Returns them in claim order: priority
-- descending, then run_at, then enqueue order. A paused queue yields nothing.
-- worker_id is recorded as claimed_by (the node registry releases a restarted
-- node's claims by it). Commits without waiting for the WAL flush, unless
-- the caller's transaction already wrote something (see _relax_commit).
-- The picked rows are updated through job_pkey (`id = any(...)`, seq scans
-- off), never through a join with the live table: its statistics swing
-- between empty and full, and a join planned while it looked empty would
-- walk the whole table for every claimed job.
-- Keep claim transactions short: a claim that meets a row another claimer
-- took while it ran keeps a lock on that row (READ COMMITTED re-check) until
-- its transaction ends, and an ack of that job waits for it meanwhile.
-- The lease (default limits() default_lease_seconds) is limits()
-- min_lease_seconds to max_lease_seconds, worker_id at
-- most max_node_id_length characters (InvalidArgument, PB007).
create or replace function pgbatch.claim(
    queue     text,
    max_jobs  integer  default 1,
    lease     interval default make_interval(secs => (pgbatch.limits() ->> 'default_lease_seconds')::float8),
    worker_id text     default null
)
returns setof pgbatch.claimed_job
language plpgsql
set enable_seqscan = off
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
begin
    perform pgbatch._check_queue(claim.queue);
    if claim.max_jobs is null or claim.max_jobs < 1 then
        perform pgbatch._raise('PB007', format('invalid max_jobs: %s, must be at least 1', coalesce(claim.max_jobs::text, 'NULL')));
    end if;
    perform pgbatch._check(pgbatch._lease_problem(claim.lease));
    if length(claim.worker_id) > pgbatch._limit('max_node_id_length') then
        perform pgbatch._raise('PB007', format('invalid worker_id: %s characters, at most %s allowed',
                                               length(claim.worker_id), pgbatch._limit('max_node_id_length')));
    end if;
    if exists (select 1 from pgbatch.queue q where q.name = claim.queue and q.paused) then
        return;
    end if;
    perform pgbatch._relax_commit();
    return query
    with picked as (
        select j.id
          from pgbatch.job j
         where j.queue = claim.queue
           and j.state = 'pending'
           and j.run_at <= v_now
         order by j.priority desc, j.run_at, j.seq
         limit claim.max_jobs
           for update skip locked
    ), claimed as (
        update pgbatch.job j
           set state = 'claimed',
               claim_token = gen_random_uuid(),
               attempt = j.attempt + 1,
               claimed_by = claim.worker_id,
               claimed_at = v_now,
               lease_expires_at = v_now + claim.lease
         where j.id = any(array(select p.id from picked p))
        returning j.id, j.queue, j.payload, j.priority, j.attempt, j.max_attempts, j.run_at,
                  j.claim_token, j.lease_expires_at, j.created_at, j.dedup_key, j.last_error, j.seq
    )
    select c.id, c.queue, c.payload, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.claim_token, c.lease_expires_at, c.created_at, c.dedup_key, c.last_error
      from claimed c
     order by c.priority desc, c.run_at, c.seq;
end
$$;
