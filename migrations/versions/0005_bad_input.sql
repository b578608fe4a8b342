-- pgbatch migration 0005_bad_input: every public function checks its
-- arguments and raises its own PB SQLSTATE (docs/limits.md).
-- - pgbatch.limits(): every default and limit in one place, read by the
--   functions below (and mirrored by pgbatch/_limits.py);
-- - one enqueue path (_insert_jobs) for enqueue, enqueue_many and ack effects;
--   a job id is unique across live and archived jobs at every entry point,
--   the id of the job being acked included, checked before anything changes;
-- - _archive replaces an archived record that shares a live job's id (left by
--   an older version), so settling, reaping and cancelling never fail on it;
--   ack_ids/ack_many settle every entry on its own;
-- - bounded leases, finite and bounded run_at/retry_at, bounded retention,
--   dedup keys, kv keys and values, errors, reasons, node info; NULLs refused.
-- New codes: PB012 ValueTooLarge, PB013 InvalidTime.
-- FROZEN: never edit this file after release; 0005_bad_input.py pins its sha256.

-- replaced by functions with new signatures or by _insert_jobs / _job_problem
drop function if exists pgbatch._check_job_args(text, jsonb, integer);
drop function if exists pgbatch._enqueue_requests(jsonb);
drop function if exists pgbatch._apply_effects(jsonb);

-- ==== core/functions/003_check.sql ====
-- Raises a problem found by one of the _*_problem functions: `problem` is
-- {sqlstate, message} (see _raise), or NULL when there is none.
create or replace function pgbatch._check(problem text[])
returns void
language plpgsql
as $$
begin
    if problem is not null then
        perform pgbatch._raise(problem[1], problem[2]);
    end if;
end
$$;

-- ==== queue/functions/004_limit.sql ====
-- One value of pgbatch.limits() as a number (immutable: a constant in every plan).
create or replace function pgbatch._limit(name text)
returns bigint
language sql
immutable
parallel safe
as $$ select (pgbatch.limits() ->> name)::bigint $$;

-- ==== queue/functions/004_limit_interval.sql ====
-- A duration of pgbatch.limits() (given there in seconds) as an interval.
create or replace function pgbatch._limit_interval(name text)
returns interval
language sql
immutable
parallel safe
as $$ select make_interval(secs => pgbatch._limit(name)) $$;

-- ==== queue/functions/004_limits.sql ====
-- limits: every default and limit of the SQL API, in one place (docs/limits.md).
-- Functions read them from here (immutable: folded into each plan once), and
-- pgbatch/_limits.py mirrors them for Python (a test keeps the two equal).
-- Lengths are in characters, sizes in bytes (of jsonb: its stored form),
-- durations in seconds.
--   default_max_attempts         enqueue's max_attempts when none is given
--   max_queue_name_length        queue names: 1 .. this many characters, not blank
--   max_payload_bytes            a job's payload
--   min_lease_seconds            claim / renew_lease: shortest lease
--   max_lease_seconds            claim / renew_lease: longest lease (1 day)
--   max_run_at_offset_seconds    run_at, retry_at, requeue run_at, backoff base
--                                and cap: at most this far from now (10 years)
--   max_retention_seconds        sweep_retention ages (100 years)
--   max_dedup_key_length         dedup keys (well under the btree entry limit)
--   max_kv_key_length            kv keys (well under the btree entry limit)
--   max_kv_value_bytes           one kv value
--   max_error_bytes              nack's error, dead_letter's reason
--   max_node_id_length           node ids and claim's worker_id
--   max_node_info_bytes          register_node's info
create or replace function pgbatch.limits()
returns jsonb
language sql
immutable
parallel safe
as $$
    select '{
        "default_max_attempts": 20,
        "max_queue_name_length": 128,
        "max_payload_bytes": 1048576,
        "min_lease_seconds": 1,
        "max_lease_seconds": 86400,
        "max_run_at_offset_seconds": 315576000,
        "max_retention_seconds": 3155760000,
        "max_dedup_key_length": 256,
        "max_kv_key_length": 256,
        "max_kv_value_bytes": 1048576,
        "max_error_bytes": 65536,
        "max_node_id_length": 200,
        "max_node_info_bytes": 65536
    }'::jsonb
$$;

-- ==== queue/functions/004_max_payload_bytes.sql ====
-- The largest payload accepted, in bytes of its stored (jsonb) form: 1 MiB
-- (pgbatch.limits() ->> 'max_payload_bytes').
create or replace function pgbatch.max_payload_bytes()
returns integer
language sql
immutable
parallel safe
as $$ select (pgbatch.limits() ->> 'max_payload_bytes')::integer $$;

-- ==== queue/functions/005_backoff_problem.sql ====
-- What is wrong with a retry backoff (nack, backoff), as {sqlstate, message}
-- (InvalidArgument, PB007), or NULL: base and cap are given, not negative,
-- and at most limits() max_run_at_offset_seconds.
create or replace function pgbatch._backoff_problem(base interval, cap interval)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when base is null or cap is null
            then array['PB007', 'invalid backoff: backoff_base and backoff_cap must not be NULL']
        when base < interval '0' or cap < interval '0'
            then array['PB007', format('invalid backoff: base %s and cap %s must not be negative', base, cap)]
        when base > pgbatch._limit_interval('max_run_at_offset_seconds')
          or cap > pgbatch._limit_interval('max_run_at_offset_seconds')
            then array['PB007', format('invalid backoff: base %s and cap %s must be at most %s',
                                       base, cap, justify_hours(pgbatch._limit_interval('max_run_at_offset_seconds')))]
    end
$$;

-- ==== queue/functions/005_check_queue.sql ====
-- Validates a queue name (see _queue_problem): InvalidQueueName (PB005).
create or replace function pgbatch._check_queue(queue text)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check(pgbatch._queue_problem(queue));
end
$$;

-- ==== queue/functions/005_lease_problem.sql ====
-- What is wrong with a lease (claim, renew_lease), as {sqlstate, message}
-- (InvalidArgument, PB007), or NULL: a lease is limits() min_lease_seconds
-- to max_lease_seconds long.
create or replace function pgbatch._lease_problem(lease interval)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when lease is null or lease <= interval '0'
            then array['PB007', format('invalid lease: %s, must be positive', coalesce(lease::text, 'NULL'))]
        when lease < pgbatch._limit_interval('min_lease_seconds')
          or lease > pgbatch._limit_interval('max_lease_seconds')
            then array['PB007', format('invalid lease: %s, must be %s to %s',
                                       lease, justify_hours(pgbatch._limit_interval('min_lease_seconds')),
                                       justify_hours(pgbatch._limit_interval('max_lease_seconds')))]
    end
$$;

-- ==== queue/functions/005_queue_problem.sql ====
-- What is wrong with a queue name, as {sqlstate, message} (InvalidQueueName,
-- PB005), or NULL when it is valid: non-empty text of at most
-- limits() max_queue_name_length characters that is not only whitespace
-- (the characters Python's str.isspace() accepts). Shared by every entry
-- point that takes a queue name, set-wise ones included.
create or replace function pgbatch._queue_problem(queue text)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when queue is null or length(queue) = 0
            then array['PB005', 'invalid queue name: must be non-empty text']
        when length(queue) > pgbatch._limit('max_queue_name_length')
            then array['PB005', format('invalid queue name: %s characters, at most %s allowed',
                                       length(queue), pgbatch._limit('max_queue_name_length'))]
        when btrim(queue, U&'\0009\000A\000B\000C\000D\001C\001D\001E\001F\0020\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\2028\2029\202F\205F\3000') = ''
            then array['PB005', 'invalid queue name: must not be only whitespace']
    end
$$;

-- ==== queue/functions/005_time_problem.sql ====
-- What is wrong with a point in time given for `what` (run_at, retry_at), as
-- {sqlstate, message} (InvalidTime, PB013), or NULL when it is NULL (the
-- caller's default applies) or finite and at most limits()
-- max_run_at_offset_seconds before or after `now`.
create or replace function pgbatch._time_problem(what text, at timestamptz, now timestamptz)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when not isfinite(at)
            then array['PB013', format('invalid %s: %s, must be a finite time', what, at)]
        when at > now + pgbatch._limit_interval('max_run_at_offset_seconds')
          or at < now - pgbatch._limit_interval('max_run_at_offset_seconds')
            then array['PB013', format('invalid %s: %s is more than %s from now (%s)',
                                       what, at, justify_hours(pgbatch._limit_interval('max_run_at_offset_seconds')), now)]
    end
$$;

-- ==== queue/functions/006_job_problem.sql ====
-- What is wrong with one job to enqueue, as {sqlstate, message}, or NULL when
-- it is valid: the queue name (PB005), the payload (a JSON value of at most
-- max_payload_bytes, PB006), run_at (NULL or within reach of `now`, PB013),
-- max_attempts (at least 1, PB007) and the dedup key (at most limits()
-- max_dedup_key_length characters, PB012). The one check of every enqueue
-- path (see _insert_jobs); evaluated set-wise, one row per job.
create or replace function pgbatch._job_problem(queue text, payload jsonb, run_at timestamptz,
                                                dedup_key text, max_attempts integer,
                                                now timestamptz)
returns text[]
language sql
stable
parallel safe
as $$
    select coalesce(
        pgbatch._queue_problem(queue),
        case
            when payload is null
                then array['PB006', 'invalid payload: must be a JSON value, not NULL']
            when pg_column_size(payload) > pgbatch.max_payload_bytes()
                then array['PB006', format('payload too large: %s bytes, at most %s allowed',
                                           pg_column_size(payload), pgbatch.max_payload_bytes())]
        end,
        pgbatch._time_problem('run_at', run_at, now),
        case
            when max_attempts is null or max_attempts < 1
                then array['PB007', format('invalid max_attempts: %s, must be at least 1',
                                           coalesce(max_attempts::text, 'NULL'))]
            when length(dedup_key) > pgbatch._limit('max_dedup_key_length')
                then array['PB012', format('dedup_key too long: %s characters, at most %s allowed',
                                           length(dedup_key), pgbatch._limit('max_dedup_key_length'))]
        end)
$$;

-- ==== queue/functions/010_backoff.sql ====
-- Retry delay after `attempt` failed attempts: exponential (base * 2^(attempt-1)),
-- capped at `cap`, with "equal jitter": uniformly in [d/2, d]. Never above cap.
-- base and cap: not NULL, not negative, at most limits()
-- max_run_at_offset_seconds (InvalidArgument, PB007). A NULL or non-positive
-- attempt counts as the first.
create or replace function pgbatch.backoff(attempt integer, base interval default '1 second',
                                           cap interval default '1 hour')
returns interval
language plpgsql
volatile
parallel safe
as $$
declare
    v_d double precision;
begin
    perform pgbatch._check(pgbatch._backoff_problem(base, cap));
    -- in seconds: base * 2^39 may exceed the interval range, a double does not
    v_d := least(extract(epoch from cap)::double precision,
                 extract(epoch from base)::double precision
                   * power(2, least(greatest(coalesce(attempt, 1), 1) - 1, 40)));
    return make_interval(secs => v_d / 2 + v_d / 2 * random());
end
$$;

-- ==== queue/functions/019_archive_row.sql ====
-- The archive record of a job that leaves the live table: the one place
-- that maps pgbatch.job onto pgbatch.job_archive (used by _archive and, set-wise,
-- by _ack_plain). `last_error` NULL keeps the job's own.
create or replace function pgbatch._archive_row(r pgbatch.job, state text, token uuid, result jsonb,
                                                last_error jsonb, finished_at timestamptz)
returns pgbatch.job_archive
language sql
immutable
parallel safe
as $$
    select row(r.id, r.queue, r.payload, r.priority, r.run_at, state, r.attempt, r.max_attempts,
               r.dedup_key, r.created_at, finished_at, token, r.claimed_by,
               coalesce(last_error, r.last_error), result, r.seq)::pgbatch.job_archive
$$;

-- ==== queue/functions/020_archive.sql ====
-- Moves a job that has left the live table (the caller deleted it) into the
-- archive as done, dead or cancelled, and counts it for queue_stats().
-- An archived record with the same id can only have been left by an older
-- pgbatch that let an ack's follow-up reuse the acked job's id (today every
-- entry point refuses such ids): it is replaced, and its count taken back, so
-- settling, reaping and cancelling that job never fail on it.
create or replace function pgbatch._archive(r pgbatch.job, state text, token uuid, result jsonb,
                                            last_error jsonb default null)
returns void
language plpgsql
as $$
declare
    v_queue text;
    v_state text;
begin
    delete from pgbatch.job_archive a where a.id = r.id returning a.queue, a.state into v_queue, v_state;
    if found then
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        values (v_queue, -(v_state = 'done')::integer, -(v_state = 'dead')::integer,
                -(v_state = 'cancelled')::integer);
    end if;
    insert into pgbatch.job_archive
    select (pgbatch._archive_row(r, _archive.state, token, result, last_error, pgbatch.now())).*;
    insert into pgbatch.queue_count (queue, done, dead, cancelled)
    values (r.queue,
            (_archive.state = 'done')::integer,
            (_archive.state = 'dead')::integer,
            (_archive.state = 'cancelled')::integer);
end
$$;

-- ==== queue/functions/028_insert_leaders.sql ====
-- Inserts the leaders among jobs prepared by _insert_jobs (every job whose
-- id equals its leader's; see there) in request order, leaving out those
-- that meet a live duplicate (queue, dedup_key), and announces them: the
-- ready count and earliest due time once per queue.
create or replace function pgbatch._insert_leaders(
    ids          uuid[],
    leaders      uuid[],
    queues       text[],
    payloads     jsonb[],
    priorities   integer[],
    run_ats      timestamptz[],
    max_attempts integer[],
    dedup_keys   text[],
    now          timestamptz
)
returns void
language plpgsql
as $$
declare
    v_count bigint;
begin
    with ins as (
        insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
        select u.id, u.queue, u.payload, coalesce(u.priority, 0), u.run_at, u.max_attempts, u.dedup_key, _insert_leaders.now
          from unnest(ids, leaders, queues, payloads, priorities, run_ats, max_attempts, dedup_keys)
               with ordinality as u(id, leader, queue, payload, priority, run_at, max_attempts, dedup_key, ord)
         where u.id = u.leader
         order by u.ord
        on conflict (queue, dedup_key) where dedup_key is not null do nothing
        returning j.queue, j.run_at
    )
    select count(pgbatch._announce(p.queue, p.ready, p.due_at)) into v_count
      from (select ins.queue,
                   count(*) filter (where ins.run_at <= _insert_leaders.now) as ready,
                   min(ins.run_at) filter (where ins.run_at > _insert_leaders.now) as due_at
              from ins group by ins.queue) p;
end
$$;

-- ==== queue/functions/029_insert_jobs.sql ====
-- The one path by which jobs are enqueued (enqueue, enqueue_many, ack
-- effects): validates and inserts jobs given as parallel arrays, one element
-- per job in request order, and returns their ids in that order.
--   ids         the job's id, or NULL to mint a time-ordered one
--   run_ats     NULL: now
--   taken       an id no job may get although no table holds it at this
--               moment: ack() passes the job it is settling
--   numbered    messages name the request ("invalid enqueue request 2: ...")
-- Everything is checked before anything changes: every job
-- (_job_problem), then the given ids, which must not belong to a live or an
-- archived job, be `taken`, or repeat (DuplicateJobId, PB002; index probes
-- of job_pkey and job_archive_pkey for the whole array at once).
-- Dedup applies against live jobs and inside the arrays (a later job with the
-- same queue and dedup_key gets the earlier one's id). Announces the ready
-- count (and earliest due time) once per queue. Sequential scans are off so
-- the id probes never walk the live table on wrong statistics. A given id
-- that a concurrent transaction inserts between the probe and the insert is
-- DuplicateJobId too (the insert runs in a subtransaction only then).
create or replace function pgbatch._insert_jobs(
    ids          uuid[],
    queues       text[],
    payloads     jsonb[],
    run_ats      timestamptz[],
    priorities   integer[],
    dedup_keys   text[],
    max_attempts integer[],
    taken        uuid    default null,
    numbered     boolean default true
)
returns uuid[]
language plpgsql
set enable_seqscan = off
as $$
declare
    v_now     timestamptz := pgbatch.now();
    v_problem text[];
    v_ord     bigint;
    v_dup     uuid;
    v_id      uuid[];
    v_run_at  timestamptz[];
    v_leader  uuid[];
    v_dedup   boolean := cardinality(array_remove(dedup_keys, null)) > 0;
    v_explicit boolean := cardinality(array_remove(ids, null)) > 0;
    v_detail  text;
    v_result  uuid[];
begin
    -- every job on its own: the first problem, in request order
    select x.problem, x.ord into v_problem, v_ord
      from (select u.ord, pgbatch._job_problem(u.queue, u.payload, u.run_at, u.dedup_key,
                                               u.max_attempts, v_now) as problem
              from unnest(queues, payloads, run_ats, dedup_keys, max_attempts) with ordinality
                   as u(queue, payload, run_at, dedup_key, max_attempts, ord)
            offset 0) x
     where x.problem is not null
     order by x.ord
     limit 1;
    if v_problem is not null then
        if numbered then
            v_problem[2] := format('invalid enqueue request %s: %s', v_ord - 1, v_problem[2]);
        end if;
        perform pgbatch._check(v_problem);
    end if;

    -- given ids: not used by any job, live or archived, nor twice
    if v_explicit then
        select d.id into v_dup
          from (select taken as id where taken = any(ids)
                union all
                select j.id from pgbatch.job j where j.id = any(ids)
                union all
                select a.id from pgbatch.job_archive a where a.id = any(ids)
                union all
                (select u.id from unnest(ids) as u(id) where u.id is not null
                  group by u.id having count(*) > 1)) d
         limit 1;
        if v_dup is not null then
            perform pgbatch._raise('PB002', format('duplicate job id %s', v_dup),
                                   case when v_dup = taken then 'it is the id of the job being acked' end);
        end if;
    end if;

    select array_agg(coalesce(u.id, pgbatch.uuid_v7()) order by u.ord),
           array_agg(coalesce(u.run_at, v_now) order by u.ord)
      into v_id, v_run_at
      from unnest(ids, run_ats) with ordinality as u(id, run_at, ord);

    -- leaders are inserted: every job without a dedup_key, and the first of
    -- each (queue, dedup_key) in the arrays; a leader that meets a live
    -- duplicate is left out
    if v_dedup then
        select array_agg(case when x.dedup_key is null then x.id else x.first_id end order by x.ord)
          into v_leader
          from (select u.*, first_value(u.id) over (partition by u.queue, u.dedup_key order by u.ord) as first_id
                  from unnest(v_id, queues, dedup_keys) with ordinality as u(id, queue, dedup_key, ord)) x;
    else
        v_leader := v_id;
    end if;

    if v_explicit then
        begin
            perform pgbatch._insert_leaders(v_id, v_leader, queues, payloads, priorities, v_run_at,
                                            max_attempts, dedup_keys, v_now);
        exception when unique_violation then
            -- a concurrent transaction committed one of the given ids after the probe
            get stacked diagnostics v_detail = pg_exception_detail;
            perform pgbatch._raise('PB002', 'duplicate job id', v_detail);
        end;
    else
        perform pgbatch._insert_leaders(v_id, v_leader, queues, payloads, priorities, v_run_at,
                                        max_attempts, dedup_keys, v_now);
    end if;

    if not v_dedup then
        return v_id;
    end if;
    -- a job with a dedup_key takes the id of the live job holding that key:
    -- the one just inserted, or the duplicate that was already there
    select array_agg(case when u.dedup_key is null then u.leader
                          else (select j.id from pgbatch.job j
                                 where j.queue = u.queue and j.dedup_key = u.dedup_key) end
                     order by u.ord)
      into v_result
      from unnest(v_leader, queues, dedup_keys) with ordinality as u(leader, queue, dedup_key, ord);

    -- a live duplicate that was settled while we ran: enqueue those one by one
    for i in 1 .. cardinality(v_result) loop
        if v_result[i] is null then
            v_result[i] := (pgbatch._insert_jobs(array[ids[i]], array[queues[i]], array[payloads[i]],
                                                 array[run_ats[i]], array[priorities[i]],
                                                 array[dedup_keys[i]], array[max_attempts[i]],
                                                 taken, false))[1];
        end if;
    end loop;
    return v_result;
end
$$;

-- ==== queue/functions/030_enqueue.sql ====
-- enqueue: inserts one job and returns its id.
--   queue         any non-empty text up to limits() max_queue_name_length
--                 characters, not only whitespace
--   payload       any JSON value (at most max_payload_bytes())
--   run_at        not claimable before this time (default: now); finite and
--                 within limits() max_run_at_offset_seconds of now
--   priority      higher runs first
--   dedup_key     while a live (pending or claimed) job of this queue has the
--                 same key, returns that job's id and inserts nothing; at
--                 most limits() max_dedup_key_length characters
--   max_attempts  claims allowed before the job is dead-lettered (>= 1;
--                 default limits() default_max_attempts)
--   id_override   the job's id; an id already used by a live or archived job
--                 raises DuplicateJobId (PB002)
-- A job that is claimable now is announced on the queue's channel; a job due
-- later sends a due-time hint (see _announce). Validation and insert are
-- _insert_jobs', shared with enqueue_many and ack effects.
create or replace function pgbatch.enqueue(
    queue        text,
    payload      jsonb       default '{}',
    run_at       timestamptz default null,
    priority     integer     default 0,
    dedup_key    text        default null,
    max_attempts integer     default (pgbatch.limits() ->> 'default_max_attempts')::integer,
    id_override  uuid        default null
)
returns uuid
language plpgsql
as $$
begin
    perform pgbatch._durable_commit();
    return (pgbatch._insert_jobs(array[id_override], array[queue], array[payload], array[run_at],
                                 array[priority], array[dedup_key], array[max_attempts],
                                 numbered => false))[1];
end
$$;

-- ==== queue/functions/031_enqueue_requests.sql ====
-- Enqueues a JSON array of enqueue requests and returns the ids in request
-- order. Used by enqueue_many() and by ack effects. A request is an object
-- with "queue" (required) and optional "payload", "run_at", "priority",
-- "dedup_key", "max_attempts", "id"; any other key is an error. This
-- function checks the JSON (shape, keys, JSON types) and decodes it; the
-- values are validated and inserted by _insert_jobs, as for enqueue()
-- (`taken`: see there).
create or replace function pgbatch._enqueue_requests(requests jsonb, taken uuid default null)
returns uuid[]
language plpgsql
as $$
declare
    v_problem      text[];
    v_id           uuid[];
    v_queue        text[];
    v_payload      jsonb[];
    v_priority     integer[];
    v_run_at       timestamptz[];
    v_max_attempts integer[];
    v_dedup        text[];
begin
    if requests is null or jsonb_typeof(requests) <> 'array' then
        perform pgbatch._raise('PB007', 'enqueue requests must be a JSON array of objects');
    end if;
    if jsonb_array_length(requests) = 0 then
        return '{}';
    end if;

    -- shape: objects, known keys, right JSON types
    select array[c.problem[1], format('invalid enqueue request %s: %s', c.ord - 1, c.problem[2])]
      into v_problem
      from (
        select ord,
               case
                 when jsonb_typeof(req) <> 'object' then array['PB007', 'must be a JSON object']
                 when req - array['queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'] <> '{}'::jsonb
                   then array['PB007', 'unknown key(s): ' || (select string_agg(k, ', ') from jsonb_object_keys(req) k
                                                              where k not in ('queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'))]
                 when jsonb_typeof(req -> 'queue') is distinct from 'string' then array['PB005', 'queue must be a string']
                 when req ? 'run_at' and jsonb_typeof(req -> 'run_at') not in ('string', 'null') then array['PB007', 'run_at must be a timestamp string']
                 when req ? 'priority' and jsonb_typeof(req -> 'priority') not in ('number', 'null') then array['PB007', 'priority must be an integer']
                 when req ? 'max_attempts' and jsonb_typeof(req -> 'max_attempts') not in ('number', 'null') then array['PB007', 'max_attempts must be an integer']
                 when req ? 'dedup_key' and jsonb_typeof(req -> 'dedup_key') not in ('string', 'null') then array['PB007', 'dedup_key must be a string']
                 when req ? 'id' and jsonb_typeof(req -> 'id') not in ('string', 'null') then array['PB007', 'id must be a UUID string']
               end as problem
          from jsonb_array_elements(requests) with ordinality as e(req, ord)
         offset 0
      ) c
     where c.problem is not null
     order by c.ord
     limit 1;
    perform pgbatch._check(v_problem);

    begin
        select array_agg((e.req ->> 'id')::uuid order by e.ord),
               array_agg(e.req ->> 'queue' order by e.ord),
               array_agg(coalesce(e.req -> 'payload', '{}'::jsonb) order by e.ord),
               array_agg((e.req ->> 'priority')::integer order by e.ord),
               array_agg((e.req ->> 'run_at')::timestamptz order by e.ord),
               array_agg(coalesce((e.req ->> 'max_attempts')::integer,
                                  pgbatch._limit('default_max_attempts')::integer) order by e.ord),
               array_agg(e.req ->> 'dedup_key' order by e.ord)
          into v_id, v_queue, v_payload, v_priority, v_run_at, v_max_attempts, v_dedup
          from jsonb_array_elements(requests) with ordinality as e(req, ord);
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid enqueue request: ' || sqlerrm);
    end;

    return pgbatch._insert_jobs(v_id, v_queue, v_payload, v_run_at, v_priority, v_dedup,
                                v_max_attempts, taken);
end
$$;

-- ==== queue/functions/040_claim.sql ====
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
-- The lease is limits() min_lease_seconds to max_lease_seconds, worker_id at
-- most max_node_id_length characters (InvalidArgument, PB007).
create or replace function pgbatch.claim(
    queue     text,
    max_jobs  integer  default 1,
    lease     interval default '30 seconds',
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

-- ==== queue/functions/051_apply_effects.sql ====
-- Applies ack effects in the caller's transaction and returns the ids of the
-- follow-up jobs. `effects` is a JSON object with any of:
--   "enqueue":   array of enqueue requests (see enqueue_many); `settling` is
--                the id of the job being acked, which no follow-up may reuse
--   "kv_put":    object of key -> JSON value, upserted into pgbatch.kv (keys
--                of at most limits() max_kv_key_length characters, values of
--                at most max_kv_value_bytes)
--   "kv_delete": array of keys removed from pgbatch.kv
-- Anything else, and any invalid request or kv entry, is InvalidEffects
-- (PB008); a follow-up id already in use is DuplicateJobId (PB002).
create or replace function pgbatch._apply_effects(effects jsonb, settling uuid default null)
returns uuid[]
language plpgsql
as $$
declare
    v_ids uuid[] := '{}';
    v_bad text;
begin
    if effects is null or effects = 'null'::jsonb or effects = '{}'::jsonb then
        return v_ids;
    end if;
    if jsonb_typeof(effects) <> 'object' then
        perform pgbatch._raise('PB008', format('invalid effects: must be a JSON object, got %s', jsonb_typeof(effects)));
    end if;
    select string_agg(k, ', ') into v_bad from jsonb_object_keys(effects) k
     where k not in ('enqueue', 'kv_put', 'kv_delete');
    if v_bad is not null then
        perform pgbatch._raise('PB008', format('invalid effects: unknown key(s) %s (allowed: enqueue, kv_put, kv_delete)', v_bad));
    end if;
    if effects ? 'enqueue' and jsonb_typeof(effects -> 'enqueue') <> 'array' then
        perform pgbatch._raise('PB008', 'invalid effects: "enqueue" must be an array of enqueue requests');
    end if;
    if effects ? 'kv_put' and jsonb_typeof(effects -> 'kv_put') <> 'object' then
        perform pgbatch._raise('PB008', 'invalid effects: "kv_put" must be an object of key -> value');
    end if;
    if effects ? 'kv_delete' and (jsonb_typeof(effects -> 'kv_delete') <> 'array'
        or exists (select 1 from jsonb_array_elements(effects -> 'kv_delete') e where jsonb_typeof(e) <> 'string')) then
        perform pgbatch._raise('PB008', 'invalid effects: "kv_delete" must be an array of key strings');
    end if;
    if effects ? 'kv_put' then
        select case
                 when length(e.key) > pgbatch._limit('max_kv_key_length')
                   then format('invalid effects: kv_put key of %s characters, at most %s allowed',
                               length(e.key), pgbatch._limit('max_kv_key_length'))
                 else format('invalid effects: kv_put value of key %s is %s bytes, at most %s allowed',
                             left(e.key, 64), pg_column_size(e.value), pgbatch._limit('max_kv_value_bytes'))
               end
          into v_bad
          from jsonb_each(effects -> 'kv_put') e
         where length(e.key) > pgbatch._limit('max_kv_key_length')
            or pg_column_size(e.value) > pgbatch._limit('max_kv_value_bytes')
         limit 1;
        if v_bad is not null then
            perform pgbatch._raise('PB008', v_bad);
        end if;
    end if;

    if effects ? 'enqueue' then
        begin
            v_ids := pgbatch._enqueue_requests(effects -> 'enqueue', settling);
        exception when sqlstate 'PB007' or sqlstate 'PB005' or sqlstate 'PB006'
                    or sqlstate 'PB012' or sqlstate 'PB013' then
            perform pgbatch._raise('PB008', 'invalid effects: ' || sqlerrm);
        end;
    end if;
    if effects ? 'kv_put' then
        insert into pgbatch.kv as kv (key, value, updated_at)
        select e.key, e.value, pgbatch.now() from jsonb_each(effects -> 'kv_put') e
        on conflict (key) do update set value = excluded.value, updated_at = excluded.updated_at;
    end if;
    if effects ? 'kv_delete' then
        delete from pgbatch.kv kv
         where kv.key in (select jsonb_array_elements_text(effects -> 'kv_delete'));
    end if;
    return v_ids;
end
$$;

-- ==== queue/functions/052_ack.sql ====
-- ack: marks a claimed job done and applies `effects` (see _apply_effects:
-- follow-up enqueues, kv_put, kv_delete) in the same transaction: all or
-- nothing. Returns the follow-up job ids. ClaimLost (PB001) when the claim is
-- gone (lease reaped, token stale); nothing is applied then. A retry with the
-- token that already acked the job returns the first call's ids. A follow-up
-- may not reuse the acked job's id (DuplicateJobId, PB002): like any id of a
-- live or archived job, it is refused before anything is applied.
create or replace function pgbatch.ack(job_id uuid, claim_token uuid, effects jsonb default null)
returns uuid[]
language plpgsql
as $$
declare
    r     pgbatch.job;
    v_ids uuid[] := '{}';
begin
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
    perform pgbatch._archive(r, 'done', claim_token, jsonb_build_object('op', 'ack', 'ids', to_jsonb(v_ids)));
    return v_ids;
end
$$;

-- ==== queue/functions/054_nack.sql ====
-- nack: the attempt failed. Returns the job to pending at `retry_at`
-- (default: now + backoff(attempt, backoff_base, backoff_cap), exponential
-- with jitter) and stores `error` (any JSON, e.g. {"type", "message",
-- "traceback"}) as last_error. When the attempt was the last allowed one
-- (attempt >= max_attempts) the job is dead-lettered instead; a job whose
-- cancellation was requested while it ran ends cancelled. Returns the state
-- the job is left in: 'pending', 'dead' or 'cancelled'. ClaimLost (PB001)
-- when the claim is gone; a retry with the same token returns the first
-- call's answer. Refused (changing nothing): an error over limits()
-- max_error_bytes (ValueTooLarge, PB012), a retry_at that is not finite or
-- too far from now (InvalidTime, PB013), a NULL, negative or too large
-- backoff_base or backoff_cap (InvalidArgument, PB007).
create or replace function pgbatch.nack(
    job_id       uuid,
    claim_token  uuid,
    error        jsonb       default null,
    retry_at     timestamptz default null,
    backoff_base interval    default '1 second',
    backoff_cap  interval    default '1 hour'
)
returns text
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_now   timestamptz := pgbatch.now();
    v_state text;
    v_at    timestamptz;
begin
    if pg_column_size(error) > pgbatch._limit('max_error_bytes') then
        perform pgbatch._raise('PB012', format('error too large: %s bytes, at most %s allowed',
                                               pg_column_size(error), pgbatch._limit('max_error_bytes')));
    end if;
    perform pgbatch._check(pgbatch._time_problem('retry_at', retry_at, v_now));
    perform pgbatch._check(pgbatch._backoff_problem(backoff_base, backoff_cap));
    select * into r from pgbatch.job j
     where j.id = nack.job_id and j.claim_token = nack.claim_token
       for update;
    if not found then
        return pgbatch._settled_result(job_id, claim_token, 'nack') ->> 'state';
    end if;
    perform pgbatch._durable_commit();
    if r.cancel_requested or r.attempt >= r.max_attempts then
        v_state := case when r.cancel_requested then 'cancelled' else 'dead' end;
        delete from pgbatch.job j where j.id = r.id;
        perform pgbatch._archive(r, v_state, claim_token,
                                 jsonb_build_object('op', 'nack', 'state', v_state), error);
        return v_state;
    end if;
    v_at := coalesce(retry_at, v_now + pgbatch.backoff(r.attempt, backoff_base, backoff_cap));
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, run_at = v_at, last_error = error,
           settled_token = nack.claim_token,
           settled_result = '{"op": "nack", "state": "pending"}'
     where j.id = r.id;
    if v_at <= v_now then
        perform pgbatch._announce(r.queue, 1);
    else
        perform pgbatch._announce(r.queue, 0, v_at);
    end if;
    return 'pending';
end
$$;

-- ==== queue/functions/055_dead_letter.sql ====
-- dead_letter: moves a claimed job to dead (no further attempts), storing
-- `reason` as last_error {"type": "DeadLettered", "message": reason}.
-- ClaimLost (PB001) when the claim is gone; idempotent for the same token.
-- A reason over limits() max_error_bytes (in UTF-8) is refused (ValueTooLarge,
-- PB012).
create or replace function pgbatch.dead_letter(job_id uuid, claim_token uuid, reason text default null)
returns void
language plpgsql
as $$
declare
    r pgbatch.job;
begin
    if octet_length(reason) > pgbatch._limit('max_error_bytes') then
        perform pgbatch._raise('PB012', format('reason too large: %s bytes, at most %s allowed',
                                               octet_length(reason), pgbatch._limit('max_error_bytes')));
    end if;
    delete from pgbatch.job j
     where j.id = dead_letter.job_id and j.claim_token = dead_letter.claim_token
    returning j.* into r;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'dead_letter');
        return;
    end if;
    perform pgbatch._durable_commit();
    perform pgbatch._archive(r, 'dead', claim_token, '{"op": "dead_letter"}',
                             jsonb_build_object('type', 'DeadLettered', 'message', reason));
end
$$;

-- ==== queue/functions/056_renew_lease.sql ====
-- renew_lease: extends a claim's lease to now + `lease` and returns the new
-- expiry. Works after the lease expired as long as nobody reaped or
-- re-claimed the job. ClaimLost (PB001) when the claim is gone; JobCancelled
-- (PB009) when cancel_job() was called for the job: the worker should stop
-- and nack it (it then ends cancelled). Commits without waiting for the WAL
-- flush (a lost renewal can only cause a redelivery). The lease is
-- limits() min_lease_seconds to max_lease_seconds (InvalidArgument, PB007).
create or replace function pgbatch.renew_lease(job_id uuid, claim_token uuid, lease interval default '30 seconds')
returns timestamptz
language plpgsql
as $$
declare
    v_expires   timestamptz;
    v_cancelled boolean;
begin
    perform pgbatch._check(pgbatch._lease_problem(lease));
    perform pgbatch._relax_commit();
    update pgbatch.job j
       set lease_expires_at = pgbatch.now() + renew_lease.lease
     where j.id = renew_lease.job_id and j.claim_token = renew_lease.claim_token
    returning j.lease_expires_at, j.cancel_requested into v_expires, v_cancelled;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'renew');
    end if;
    if v_cancelled then
        perform pgbatch._raise('PB009', format('job %s was cancelled', job_id),
                               'stop working on it and nack it; it ends cancelled');
    end if;
    return v_expires;
end
$$;

-- ==== queue/functions/058_ack_plain.sql ====
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

-- ==== queue/functions/059_ack_ids.sql ====
-- ack_ids: the fast path of ack_many for acks without effects. Settles
-- job_ids[i] with claim_tokens[i] for every i, all in one transaction and
-- one set-wise statement, and returns a row only for the entries that were
-- NOT acked, in input order: status 'claim_lost' (PB001), 'not_found'
-- (PB003) or 'error' (any other SQLSTATE; that entry alone is not acked). No
-- row means every entry was acked. An entry whose token already acked its
-- job (a retry after a connection lost at COMMIT) counts as acked.
-- The arrays must be one-dimensional, indexed from 1, of the same length and
-- without NULLs (InvalidArgument, PB007).
create or replace function pgbatch.ack_ids(job_ids uuid[], claim_tokens uuid[])
returns setof pgbatch.ack_outcome
language plpgsql
as $$
declare
    v_missed integer[];
    i        integer;
begin
    if job_ids is null or claim_tokens is null then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must not be NULL');
    end if;
    if array_ndims(job_ids) > 1 or array_ndims(claim_tokens) > 1
       or array_lower(job_ids, 1) <> 1 or array_lower(claim_tokens, 1) <> 1 then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must be one-dimensional arrays indexed from 1');
    end if;
    if cardinality(job_ids) <> cardinality(claim_tokens) then
        perform pgbatch._raise('PB007', format('job_ids has %s entries but claim_tokens has %s',
                                               cardinality(job_ids), cardinality(claim_tokens)));
    end if;
    if array_position(job_ids, null) is not null or array_position(claim_tokens, null) is not null then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must not contain NULLs');
    end if;
    perform pgbatch._durable_commit();

    v_missed := pgbatch._ack_plain(job_ids, claim_tokens);
    if v_missed is null then
        return;
    end if;
    -- the rest one by one, each on its own (ack() reports why the token does
    -- not hold its job)
    foreach i in array v_missed loop
        begin
            perform pgbatch.ack(job_ids[i], claim_tokens[i]);
        exception
            when sqlstate 'PB001' then
                return next row(job_ids[i], 'claim_lost', 'PB001', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when sqlstate 'PB003' then
                return next row(job_ids[i], 'not_found', 'PB003', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when others then
                return next row(job_ids[i], 'error', sqlstate, sqlerrm, null::uuid[])::pgbatch.ack_outcome;
        end;
    end loop;
end
$$;

-- ==== queue/functions/060_requeue_dead_job.sql ====
-- requeue_dead_job: revives a dead job as pending at `run_at` (default now)
-- with a fresh attempt count; returns its id. JobNotFound (PB003) when no
-- dead record exists (never created, or swept by retention); InvalidState
-- (PB004) when the job is not dead; DedupConflict (PB010) when a live job
-- already holds its dedup_key; DuplicateJobId (PB002) when a live job has its
-- id (a pair left by an older pgbatch, see _archive); InvalidTime (PB013)
-- for a run_at that is not finite or too far from now. Nothing changes
-- when it refuses.
create or replace function pgbatch.requeue_dead_job(job_id uuid, run_at timestamptz default null)
returns uuid
language plpgsql
as $$
declare
    a       pgbatch.job_archive;
    v_now   timestamptz := pgbatch.now();
    v_at    timestamptz := coalesce(requeue_dead_job.run_at, v_now);
    v_state text;
begin
    perform pgbatch._check(pgbatch._time_problem('run_at', requeue_dead_job.run_at, v_now));
    if exists (select 1 from pgbatch.job j where j.id = requeue_dead_job.job_id)
       and exists (select 1 from pgbatch.job_archive x where x.id = requeue_dead_job.job_id and x.state = 'dead') then
        perform pgbatch._raise('PB002', format('duplicate job id %s: a live job has this id', job_id),
                               'settle or cancel the live job first');
    end if;
    delete from pgbatch.job_archive x
     where x.id = requeue_dead_job.job_id and x.state = 'dead'
    returning x.* into a;
    if not found then
        select x.state into v_state from pgbatch.job_archive x where x.id = requeue_dead_job.job_id;
        if v_state is null then
            select j.state into v_state from pgbatch.job j where j.id = requeue_dead_job.job_id;
        end if;
        if v_state is null then
            perform pgbatch._raise('PB003', format('job %s not found (no dead record: never dead, or swept by retention)', job_id));
        end if;
        perform pgbatch._raise('PB004', format('job %s is %s, not dead', job_id, v_state));
    end if;
    perform pgbatch._durable_commit();
    insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at, last_error)
    values (a.id, a.queue, a.payload, a.priority, v_at, a.max_attempts, a.dedup_key, a.created_at, a.last_error)
    on conflict (queue, dedup_key) where dedup_key is not null do nothing;
    if not found then
        perform pgbatch._raise('PB010', format('job %s cannot be requeued: a live job of queue %s holds dedup_key %s',
                                               job_id, a.queue, a.dedup_key));
    end if;
    insert into pgbatch.queue_count (queue, dead) values (a.queue, -1);
    if v_at <= v_now then
        perform pgbatch._announce(a.queue, 1);
    else
        perform pgbatch._announce(a.queue, 0, v_at);
    end if;
    return a.id;
end
$$;

-- ==== queue/functions/064_sweep_retention.sql ====
-- sweep_retention: deletes up to `limit` archived records: done and
-- cancelled ones finished more than `done_after` ago, dead ones more than
-- `dead_after` ago. Returns the number deleted. Safe on many nodes at once.
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
    with victims as (
        select a.id from pgbatch.job_archive a
         where (a.state in ('done', 'cancelled') and a.finished_at < v_now - done_after)
            or (a.state = 'dead' and a.finished_at < v_now - dead_after)
         limit sweep_retention."limit"
           for update skip locked
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
    return v_n;
end
$$;

-- ==== queue/functions/080_register_node.sql ====
-- register_node: a worker process announces itself under a stable node_id
-- with a fresh boot_id. When the node_id was last registered with another
-- boot_id (the process restarted after a crash), the claims recorded with
-- claimed_by = node_id belong to that dead incarnation: they are ended at
-- once (requeued, or dead-lettered at their last attempt) instead of waiting
-- for their leases. Returns the number of claims released that way.
-- node_id: 1 to limits() max_node_id_length characters, not only whitespace;
-- boot_id: not NULL (InvalidArgument, PB007); info: at most
-- max_node_info_bytes (ValueTooLarge, PB012).
create or replace function pgbatch.register_node(node_id text, boot_id uuid, info jsonb default '{}')
returns integer
language plpgsql
as $$
#variable_conflict use_column
declare
    v_old   uuid;
    v_n     integer := 0;
    r       pgbatch.job;
    v_ready jsonb := '{}';
begin
    if register_node.node_id is null or length(register_node.node_id) = 0
       or length(register_node.node_id) > pgbatch._limit('max_node_id_length')
       or btrim(register_node.node_id) = '' then
        perform pgbatch._raise('PB007', format('invalid node_id: must be 1 to %s characters, not only spaces',
                                               pgbatch._limit('max_node_id_length')));
    end if;
    if register_node.boot_id is null then
        perform pgbatch._raise('PB007', 'invalid boot_id: must not be NULL');
    end if;
    if pg_column_size(register_node.info) > pgbatch._limit('max_node_info_bytes') then
        perform pgbatch._raise('PB012', format('node info too large: %s bytes, at most %s allowed',
                                               pg_column_size(register_node.info), pgbatch._limit('max_node_info_bytes')));
    end if;
    select n.boot_id into v_old from pgbatch.node n where n.node_id = register_node.node_id for update;
    insert into pgbatch.node as n (node_id, boot_id, started_at, heartbeat_at, info)
    values (register_node.node_id, register_node.boot_id, pgbatch.now(), pgbatch.now(), coalesce(register_node.info, '{}'))
    on conflict (node_id) do update
       set boot_id = excluded.boot_id, started_at = excluded.started_at,
           heartbeat_at = excluded.heartbeat_at, info = excluded.info;
    if v_old is not null and v_old <> register_node.boot_id then
        for r in select * from pgbatch.job j
                  where j.state = 'claimed' and j.claimed_by = register_node.node_id
                    for update skip locked
        loop
            if pgbatch._expire_claim(r, 'node restarted') = 'pending' then
                v_ready := jsonb_set(v_ready, array[r.queue], to_jsonb(coalesce((v_ready ->> r.queue)::integer, 0) + 1));
            end if;
            v_n := v_n + 1;
        end loop;
        perform pgbatch._announce(k, v::bigint) from jsonb_each_text(v_ready) as x(k, v);
    end if;
    return v_n;
end
$$;

-- ==== core/functions/083_check_compat.sql ====
-- check_compat: raises IncompatibleSchema (PB011) when this database was
-- migrated by a pgbatch whose schema has a breaking change that code written
-- for `supported` does not understand. Workers call it at start; returns the
-- database's level otherwise. `supported` must not be NULL (PB007).
create or replace function pgbatch.check_compat(supported integer)
returns integer
language plpgsql
stable
as $$
declare
    v_level integer;
begin
    if supported is null then
        perform pgbatch._raise('PB007', 'invalid supported level: must not be NULL');
    end if;
    select m.value::integer into v_level from pgbatch.meta m where m.key = 'schema_compat';
    if v_level > supported then
        perform pgbatch._raise('PB011',
            format('the database schema is at compatibility level %s; this pgbatch supports up to %s', v_level, supported),
            'upgrade pgbatch on this host before starting it against this database');
    end if;
    return v_level;
end
$$;

-- Who may execute the function this version adds (docs/roles.md): limits()
-- is pure and stays SECURITY INVOKER (enqueue's max_attempts default reads it
-- in the caller's session). Then the privileges step, which the functions
-- replaced above need again (create or replace resets SECURITY DEFINER and
-- the pinned search_path).
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('limits', 'producer', false)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
select pgbatch._apply_privileges();
