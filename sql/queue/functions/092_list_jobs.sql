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
