-- pgbatch migration 0027_rare_listing: the dead and cancelled records get two
-- partial indexes in the listing order (by state; by queue and state), which
-- list_jobs reads when filtered by a rare state (instead of walking the
-- listing index past every done job) and the retention sweep of dead records
-- reads by creation time; job_archive_dead_idx (finished_at) goes.
-- On a large archive, build the new indexes first without blocking acks:
--     create index concurrently job_archive_rare_listing_idx
--         on pgbatch.job_archive (state, created_at, seq, id) where state <> 'done';
--     create index concurrently job_archive_rare_queue_listing_idx
--         on pgbatch.job_archive (queue, state, created_at, seq, id) where state <> 'done';
-- (this migration then finds them, drops the old index and replaces the two functions).
-- FROZEN: never edit this file after release; 0027_rare_listing.py pins its sha256.

create index if not exists job_archive_rare_listing_idx on pgbatch.job_archive (state, created_at, seq, id)
    where state <> 'done';
create index if not exists job_archive_rare_queue_listing_idx on pgbatch.job_archive (queue, state, created_at, seq, id)
    where state <> 'done';
drop index if exists pgbatch.job_archive_dead_idx;

-- sweep_retention: deletes up to `limit` archived records: done and
-- cancelled ones finished more than `done_after` ago, dead ones more than
-- `dead_after` ago. Returns the number deleted. Safe on many nodes at once.
-- Done and cancelled records are found along job_archive_listing_idx by their
-- creation time (a job is never settled before it was created, so every
-- record finished before the cutoff was created before it; under a clock
-- override that moves backwards, a record is swept once both times are past
-- the cutoff); dead ones the same way along the partial
-- job_archive_rare_listing_idx (state, creation time). The archive has no
-- index for done records of its own: an ack writes one entry fewer. A done
-- sweep passes over the dead records created before its cutoff that are not
-- due yet (dead_after is longer), and a sweep over records created long ago
-- but settled recently (jobs scheduled far ahead).
-- It also deletes up to `limit` request records of requeue_dead_job
-- (pgbatch.job_request) older than `dead_after` (not counted in the result):
-- a retry with the same request_id is recognised as long as a dead record
-- would be kept.
-- Commits without waiting for the WAL flush. The ages are 0 to limits()
-- max_retention_seconds (InvalidArgument, PB007).
create or replace function pgbatch.sweep_retention(
    done_after interval default '1 day',
    dead_after interval default '7 days',
    "limit"    integer  default 10000
)
returns integer
language plpgsql
as $$
declare
    v_now timestamptz := pgbatch.now();
    v_n   integer;
begin
    if sweep_retention."limit" is null or sweep_retention."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    if done_after is null or dead_after is null or done_after < interval '0' or dead_after < interval '0' then
        perform pgbatch._raise('PB007', 'invalid retention: done_after and dead_after must be non-negative intervals');
    end if;
    if done_after > pgbatch._limit_interval('max_retention_seconds')
       or dead_after > pgbatch._limit_interval('max_retention_seconds') then
        perform pgbatch._raise('PB007', format('invalid retention: done_after and dead_after must be at most %s',
                                               justify_hours(pgbatch._limit_interval('max_retention_seconds'))));
    end if;
    perform pgbatch._relax_commit();
    with done_victims as (
        select a.id from pgbatch.job_archive a
         where a.created_at < v_now - done_after
           and a.state in ('done', 'cancelled') and a.finished_at < v_now - done_after
         limit sweep_retention."limit"
           for update skip locked
    ), dead_victims as (
        select a.id from pgbatch.job_archive a
         where a.state = 'dead' and a.created_at < v_now - dead_after
           and a.finished_at < v_now - dead_after
         limit greatest(sweep_retention."limit" - (select count(*) from done_victims), 0)
           for update skip locked
    ), victims as (
        select id from done_victims union all select id from dead_victims
    ), gone as (
        delete from pgbatch.job_archive a using victims v where a.id = v.id
        returning a.queue, a.state
    ), counted as (
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        select g.queue,
               -count(*) filter (where g.state = 'done'),
               -count(*) filter (where g.state = 'dead'),
               -count(*) filter (where g.state = 'cancelled')
          from gone g group by g.queue
        returning 1
    )
    select count(*) into v_n from gone;
    delete from pgbatch.job_request r
     where (r.job_id, r.request_id, r.kind) in (
           select o.job_id, o.request_id, o.kind from pgbatch.job_request o
            where o.requested_at < v_now - dead_after
            limit sweep_retention."limit"
              for update skip locked);
    return v_n;
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
-- Filtered by a rare archived state (dead, cancelled), the archive is read
-- along job_archive_rare_listing_idx (or job_archive_rare_queue_listing_idx
-- with a queue), which hold only those records: a page costs `limit` index
-- entries however many done jobs surround them. A queue filter alone, or
-- with state done, filters the listing index's walk (it skips the other
-- queues' records).
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

    if list_jobs.state in ('dead', 'cancelled') then
        -- planned for each call with the state as a literal, so the planner
        -- may use the partial indexes (a generic plan could not) and knows
        -- how rare the state is
        return query execute format(
            'select a.id, a.seq, a.queue, a.state, a.payload, a.priority, a.attempt,'
            '       a.max_attempts, a.run_at, a.created_at, a.dedup_key, a.claimed_by,'
            '       null::timestamptz, null::timestamptz, false, a.finished_at, a.last_error,'
            '       a.result'
            '  from pgbatch.job_archive a'
            ' where a.state = %L%s'
            '   and a.created_at >= $2 and a.created_at < $3'
            '   and (a.created_at, a.seq, a.id) < ($4, $5, $6)'
            ' order by a.created_at desc, a.seq desc, a.id desc'
            ' limit $7',
            list_jobs.state,
            case when list_jobs.queue is null then '' else ' and a.queue = $1' end)
        using list_jobs.queue, v_after, v_before, v_c_at, v_c_seq, v_c_id, list_jobs."limit";
        return;
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

select pgbatch._apply_privileges();
