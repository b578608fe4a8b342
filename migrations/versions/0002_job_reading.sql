-- pgbatch migration 0002_job_reading: SQL functions for reading jobs.
--   * job_archive.seq: the job's enqueue order, copied at archiving (_archive,
--     _ack_plain), so listings order live and archived jobs alike by
--     (created_at, seq, id); records archived earlier read 0 (no rewrite).
--   * job_archive_listing_idx: list_jobs() pages the archive along it. On a
--     large archive an operator may build it beforehand, outside a
--     transaction, under the same name:
--       create index concurrently job_archive_listing_idx
--           on pgbatch.job_archive (created_at, seq, id);
--     (the `if not exists` below then does nothing).
--   * type job_info, functions _live_state (the one rule for "scheduled",
--     now also used by queue_stats), get_job, list_jobs.
-- FROZEN: never edit this file after release; 0002_job_reading.py pins its sha256.
-- Applied inside the migration's transaction with check_function_bodies = off.

set local lock_timeout = '5s';

alter table pgbatch.job_archive add column if not exists seq bigint not null default 0;
create index if not exists job_archive_listing_idx on pgbatch.job_archive (created_at, seq, id);

-- Row type returned by get_job() and list_jobs(): one job, live or archived,
-- as an operator sees it. It never carries a claim token: only claim()
-- returns one, so holding a token means having claimed the job.
create type pgbatch.job_info as (
    id               uuid,
    seq              bigint,       -- enqueue order (0: archived before it was recorded)
    queue            text,
    state            text,         -- pending, scheduled, claimed, done, dead, cancelled
    payload          jsonb,
    priority         integer,
    attempt          integer,
    max_attempts     integer,
    run_at           timestamptz,
    created_at       timestamptz,
    dedup_key        text,
    claimed_by       text,         -- the worker of the current (live) or last claim
    claimed_at       timestamptz,  -- live claims only
    lease_expires_at timestamptz,  -- live claims only
    cancel_requested boolean,      -- cancel_job() flagged the running claim
    finished_at      timestamptz,  -- archived jobs: when it was settled for good
    last_error       jsonb,
    result           jsonb         -- archived jobs: what the settling call returned
);

-- Moves a job that has left the live table (the caller deleted it) into the
-- archive as done, dead or cancelled, and counts it for queue_stats().
create or replace function pgbatch._archive(r pgbatch.job, state text, token uuid, result jsonb,
                                            last_error jsonb default null)
returns void
language plpgsql
as $$
begin
    insert into pgbatch.job_archive
        (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
         created_at, finished_at, claim_token, claimed_by, last_error, result, seq)
    values
        (r.id, r.queue, r.payload, r.priority, r.run_at, _archive.state, r.attempt, r.max_attempts,
         r.dedup_key, r.created_at, pgbatch.now(), token, r.claimed_by,
         coalesce(last_error, r.last_error), result, r.seq);
    insert into pgbatch.queue_count (queue, done, dead, cancelled)
    values (r.queue,
            (_archive.state = 'done')::integer,
            (_archive.state = 'dead')::integer,
            (_archive.state = 'cancelled')::integer);
end
$$;

-- Settles job_ids[i] with claim_tokens[i] (acks without effects) set-wise in
-- one statement: delete the live rows the tokens hold, archive them as done,
-- count them. Returns the 1-based positions of the entries that are not
-- acked by their token (in order; NULL when all are). An entry whose token
-- acked the job in an earlier call (a retry) counts as acked. The caller
-- settles the rest one by one with ack() (ClaimLost or JobNotFound) and has
-- restored durable commit. Shared by ack_ids and ack_many.
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
    with del as (
        delete from pgbatch.job j
         using unnest(job_ids, claim_tokens) as e(id, tok)
         where j.id = any(job_ids) and j.id = e.id and j.claim_token = e.tok
        returning j.id, j.queue, j.payload, j.priority, j.run_at, j.attempt, j.max_attempts,
                  j.dedup_key, j.created_at, j.claim_token, j.claimed_by, j.last_error, j.seq
    ), arch as (
        insert into pgbatch.job_archive
            (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
             created_at, finished_at, claim_token, claimed_by, last_error, result, seq)
        select d.id, d.queue, d.payload, d.priority, d.run_at, 'done', d.attempt, d.max_attempts,
               d.dedup_key, d.created_at, v_now, d.claim_token, d.claimed_by, d.last_error,
               '{"op": "ack", "ids": []}'::jsonb, d.seq
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

-- The state an operator sees for a live job at time `at`: a pending job whose
-- run_at is still ahead is 'scheduled'; otherwise its stored state (pending or
-- claimed). The one definition of "scheduled", used by queue_stats(),
-- get_job() and list_jobs(); simple enough to be inlined into their queries.
create or replace function pgbatch._live_state(state text, run_at timestamptz, at timestamptz)
returns text
language sql
immutable
parallel safe
as $$
    select case when _live_state.state = 'pending' and _live_state.run_at > _live_state.at
                then 'scheduled' else _live_state.state end
$$;

-- queue_stats: per queue (all queues when `queue` is null): pending
-- (claimable now), scheduled (run_at in the future), claimed, and the
-- archived done, dead and cancelled records not yet swept, the age of the
-- oldest claimable job, and whether the queue is paused. "scheduled" is
-- _live_state()'s rule, shared with get_job() and list_jobs(). Live counts read the
-- live table (as small as the backlog); archived counts sum append-only
-- deltas (see compact_counters).
create or replace function pgbatch.queue_stats(queue text default null)
returns setof pgbatch.queue_stat
language sql
stable
as $$
    with now_ as (select pgbatch.now() as t),
    live as (
        select j.queue,
               count(*) filter (where pgbatch._live_state(j.state, j.run_at, n.t) = 'pending')   as pending,
               count(*) filter (where pgbatch._live_state(j.state, j.run_at, n.t) = 'scheduled') as scheduled,
               count(*) filter (where j.state = 'claimed')                                       as claimed,
               max(n.t - j.run_at) filter (where pgbatch._live_state(j.state, j.run_at, n.t) = 'pending') as oldest
          from pgbatch.job j, now_ n
         where queue_stats.queue is null or j.queue = queue_stats.queue
         group by j.queue
    ), archived as (
        select c.queue, sum(c.done) as done, sum(c.dead) as dead, sum(c.cancelled) as cancelled
          from pgbatch.queue_count c
         where queue_stats.queue is null or c.queue = queue_stats.queue
         group by c.queue
    ), names as (
        select q.name from pgbatch.queue q where queue_stats.queue is null or q.name = queue_stats.queue
        union select l.queue from live l
        union select a.queue from archived a
    )
    select nm.name,
           coalesce(l.pending, 0), coalesce(l.scheduled, 0), coalesce(l.claimed, 0),
           coalesce(a.done, 0)::bigint, coalesce(a.dead, 0)::bigint, coalesce(a.cancelled, 0)::bigint,
           l.oldest,
           coalesce(q.paused, false)
      from names nm
      left join live l on l.queue = nm.name
      left join archived a on a.queue = nm.name
      left join pgbatch.queue q on q.name = nm.name
     order by nm.name
$$;

-- get_job: one job, live or archived, as a pgbatch.job_info row. A pending
-- job not due yet has state 'scheduled' (_live_state). JobNotFound (PB003)
-- when no such job exists (never enqueued, or its archived record was swept
-- by retention). Never returns a claim token. It shows any job's payload,
-- last_error and result: an operator's read, not a producer's.
create or replace function pgbatch.get_job(job_id uuid)
returns pgbatch.job_info
language plpgsql
stable
as $$
declare
    r pgbatch.job_info;
begin
    if get_job.job_id is null then
        perform pgbatch._raise('PB007', 'invalid job_id: must not be NULL');
    end if;
    select j.id, j.seq, j.queue, pgbatch._live_state(j.state, j.run_at, pgbatch.now()),
           j.payload, j.priority, j.attempt, j.max_attempts, j.run_at, j.created_at,
           j.dedup_key, j.claimed_by, j.claimed_at, j.lease_expires_at, j.cancel_requested,
           null, j.last_error, null
      into r
      from pgbatch.job j
     where j.id = get_job.job_id;
    if found then
        return r;
    end if;
    select a.id, a.seq, a.queue, a.state, a.payload, a.priority, a.attempt, a.max_attempts,
           a.run_at, a.created_at, a.dedup_key, a.claimed_by, null, null, false,
           a.finished_at, a.last_error, a.result
      into r
      from pgbatch.job_archive a
     where a.id = get_job.job_id;
    if found then
        return r;
    end if;
    perform pgbatch._raise('PB003', format('job %s not found (never enqueued, or swept by retention)',
                                           get_job.job_id));
    return null;
end
$$;

-- list_jobs: jobs newest first, live and archived together, as
-- pgbatch.job_info rows (no claim tokens; an operator's read, like get_job).
--   queue           only this queue (NULL: every queue)
--   state           only this state: pending, scheduled, claimed, done, dead
--                   or cancelled (NULL: all); 'scheduled' is _live_state's rule
--   created_after   only jobs created at or after this time
--   created_before  only jobs created before this time
--   "limit"         at most this many rows (1 to 10000)
--   cursor_*        keyset cursor: the created_at, seq and id of the last row
--                   of the previous page; the page holds the rows after it
-- Order: created_at descending, then seq (enqueue order, strictly increasing
-- even within one statement) descending, then id descending. The order is
-- total and stable, so paging by the cursor neither repeats nor skips a job
-- that stays where it is (a job revived by requeue_dead_job gets a new seq).
-- The archive is read backwards along job_archive_listing_idx from the
-- cursor (a page costs about `limit` index entries when no filter rejects
-- most rows; the time bounds narrow the scan, queue and state filter it);
-- the live table, as small as the backlog, is scanned and top-N sorted.
-- InvalidQueueName (PB005) or InvalidArgument (PB007) for bad arguments.
create or replace function pgbatch.list_jobs(
    queue             text        default null,
    state             text        default null,
    created_after     timestamptz default null,
    created_before    timestamptz default null,
    "limit"           integer     default 50,
    cursor_created_at timestamptz default null,
    cursor_seq        bigint      default null,
    cursor_id         uuid        default null
)
returns setof pgbatch.job_info
language plpgsql
stable
as $$
declare
    v_now      timestamptz := pgbatch.now();
    v_live     boolean := list_jobs.state is null or list_jobs.state in ('pending', 'scheduled', 'claimed');
    v_archived boolean := list_jobs.state is null or list_jobs.state in ('done', 'dead', 'cancelled');
    -- no cursor: start above every row, so the keyset condition is always an index bound
    v_c_at     timestamptz := coalesce(list_jobs.cursor_created_at, 'infinity');
    v_c_seq    bigint := coalesce(list_jobs.cursor_seq, 9223372036854775807);
    v_c_id     uuid := coalesce(list_jobs.cursor_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
    v_after    timestamptz := coalesce(list_jobs.created_after, '-infinity');
    v_before   timestamptz := coalesce(list_jobs.created_before, 'infinity');
begin
    if list_jobs.queue is not null then
        perform pgbatch._check_queue(list_jobs.queue);
    end if;
    if not (v_live or v_archived) then
        perform pgbatch._raise('PB007', format(
            'invalid state: %s, must be one of pending, scheduled, claimed, done, dead, cancelled',
            list_jobs.state));
    end if;
    if list_jobs."limit" is null or list_jobs."limit" < 1 or list_jobs."limit" > 10000 then
        perform pgbatch._raise('PB007', format('invalid limit: %s, must be 1 to 10000',
                                               coalesce(list_jobs."limit"::text, 'NULL')));
    end if;
    if not isfinite(v_after) and list_jobs.created_after is not null
       or not isfinite(v_before) and list_jobs.created_before is not null then
        perform pgbatch._raise('PB007', 'invalid created_after/created_before: must be finite times');
    end if;
    if (list_jobs.cursor_created_at is null) <> (list_jobs.cursor_seq is null)
       or (list_jobs.cursor_created_at is null) <> (list_jobs.cursor_id is null) then
        perform pgbatch._raise('PB007', 'invalid cursor: give cursor_created_at, cursor_seq and cursor_id together, or none');
    end if;
    if list_jobs.cursor_created_at is not null and not isfinite(list_jobs.cursor_created_at) then
        perform pgbatch._raise('PB007', 'invalid cursor_created_at: must be a finite time');
    end if;

    return query
    select u.* from (
        (select j.id, j.seq, j.queue, pgbatch._live_state(j.state, j.run_at, v_now) as state,
                j.payload, j.priority, j.attempt, j.max_attempts, j.run_at, j.created_at,
                j.dedup_key, j.claimed_by, j.claimed_at, j.lease_expires_at, j.cancel_requested,
                null::timestamptz as finished_at, j.last_error, null::jsonb as result
           from pgbatch.job j
          where v_live
            and (list_jobs.queue is null or j.queue = list_jobs.queue)
            and (list_jobs.state is null or pgbatch._live_state(j.state, j.run_at, v_now) = list_jobs.state)
            and j.created_at >= v_after and j.created_at < v_before
            and (j.created_at, j.seq, j.id) < (v_c_at, v_c_seq, v_c_id)
          order by j.created_at desc, j.seq desc, j.id desc
          limit list_jobs."limit")
        union all
        (select a.id, a.seq, a.queue, a.state, a.payload, a.priority, a.attempt, a.max_attempts,
                a.run_at, a.created_at, a.dedup_key, a.claimed_by, null::timestamptz,
                null::timestamptz, false, a.finished_at, a.last_error, a.result
           from pgbatch.job_archive a
          where v_archived
            and (list_jobs.queue is null or a.queue = list_jobs.queue)
            and (list_jobs.state is null or a.state = list_jobs.state)
            and a.created_at >= v_after and a.created_at < v_before
            and (a.created_at, a.seq, a.id) < (v_c_at, v_c_seq, v_c_id)
          order by a.created_at desc, a.seq desc, a.id desc
          limit list_jobs."limit")
    ) u
    order by u.created_at desc, u.seq desc, u.id desc
    limit list_jobs."limit";
end
$$;

