-- pgbatch migration 0015_enqueue_speed: the producer's hot path made lean.
-- enqueue() checks, inserts and announces in one short plpgsql body (no
-- array round trip through _insert_jobs; a given id costs an archive probe
-- and the primary key as the INSERT's arbiter); _insert_jobs mints
-- the ids of a call with one random draw (_mint_ids, new) and inserts jobs
-- without dedup keys with one plain INSERT (no ON CONFLICT arbiter); the new
-- public enqueue_arrays() is the bulk form with one array per field
-- (granted to pgbatch_producer). Semantics are unchanged.
-- FROZEN: never edit this file after release; 0015_enqueue_speed.py pins its sha256.

-- ==== queue/functions/027_mint_ids.sql ====
-- The ids of a call's `n` jobs: `ids` (NULL: all NULL) with every NULL
-- replaced by a fresh time-ordered UUID (RFC 9562 version 7), in order. One
-- random draw per call, not per job: the jobs of one call share the
-- millisecond and 12 random bits (rand_a) and take consecutive values of a
-- counter in rand_b that starts at a random 60-bit value (RFC 9562 section
-- 6.2, method 2, "monotonic random"), so they are unique, ordered as the
-- call's requests, and cheap to make. (A strong random draw per job cost more
-- than the insert of its row; docs/design.md, "Enqueue costs".)
-- Layout: 48 bits Unix ms | 0111 | rand_a 12 | 10 | 0 | counter 61 bits: a
-- random 60-bit start plus the job's ordinal never reaches the variant bits.
create or replace function pgbatch._mint_ids(n integer, ids uuid[] default null)
returns uuid[]
language sql
volatile
parallel safe
as $$
    select coalesce(case
        when ids is null then
            (select array_agg((s.prefix || to_hex(s.base + g.ord))::uuid order by g.ord)
               from generate_series(1, n) as g(ord))
        else
            (select array_agg(coalesce(u.id, (s.prefix || to_hex(s.base + u.ord))::uuid) order by u.ord)
               from unnest(ids) with ordinality as u(id, ord))
        end, '{}')
      from (select lpad(to_hex(floor(extract(epoch from clock_timestamp()) * 1000)::bigint), 12, '0')
                   || '7' || substr(r.hex, 14, 3) as prefix,
                   (('x' || substr(r.hex, 17, 16))::bit(64)::bigint & 1152921504606846975)
                   | x'8000000000000000'::bit(64)::bigint as base
              from (select replace(gen_random_uuid()::text, '-', '') as hex) r) s
$$;

-- ==== queue/functions/029_insert_jobs.sql ====
-- The one path by which jobs are enqueued (enqueue, enqueue_many, ack
-- effects): validates and inserts jobs given as parallel arrays, one element
-- per job in request order, and returns their ids in that order.
--   ids         the job's id, or NULL to mint a time-ordered one (the whole
--               array NULL: mint every id)
--   run_ats     NULL: now (the whole array NULL: now for every job)
--   priorities  NULL: 0 (likewise)
--   dedup_keys  NULL: no key (likewise)
--   taken       an id no job may get although no table holds it at this
--               moment: ack() passes the job it is settling
--   numbered    messages name the request ("invalid enqueue request 2: ...")
-- Everything is checked before anything changes: every job
-- (_job_problem), then the given ids, which must not belong to a live or an
-- archived job, be `taken`, or repeat (DuplicateJobId, PB002; index probes
-- of job_pkey and job_archive_pkey for the whole array at once).
-- Ids left NULL are minted for the whole call at once (_mint_ids).
-- Dedup applies against live jobs and inside the arrays (a later job with the
-- same queue and dedup_key gets the earlier one's id). Announces the ready
-- count (and earliest due time) once per queue. Without dedup keys every job
-- is inserted by one plain set-wise INSERT (no ON CONFLICT arbiter, whose
-- speculative insertion costs every row an extra index probe and WAL record)
-- and announced from the arrays. Sequential scans are off so
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
    v_dedup   boolean := coalesce(cardinality(array_remove(dedup_keys, null)), 0) > 0;
    v_explicit boolean := coalesce(cardinality(array_remove(ids, null)), 0) > 0;
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

    v_id := pgbatch._mint_ids(cardinality(queues), ids);

    if not v_dedup then
        -- the common case: every job is inserted
        if v_explicit then
            begin
                insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, created_at)
                select u.id, u.queue, u.payload, coalesce(u.priority, 0), coalesce(u.run_at, v_now),
                       u.max_attempts, v_now
                  from unnest(v_id, queues, payloads, priorities, run_ats, max_attempts)
                       with ordinality as u(id, queue, payload, priority, run_at, max_attempts, ord)
                 order by u.ord;
            exception when unique_violation then
                -- a concurrent transaction committed one of the given ids after the probe
                get stacked diagnostics v_detail = pg_exception_detail;
                perform pgbatch._raise('PB002', 'duplicate job id', v_detail);
            end;
        else
            insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, created_at)
            select u.id, u.queue, u.payload, coalesce(u.priority, 0), coalesce(u.run_at, v_now),
                   u.max_attempts, v_now
              from unnest(v_id, queues, payloads, priorities, run_ats, max_attempts)
                   with ordinality as u(id, queue, payload, priority, run_at, max_attempts, ord)
             order by u.ord;
        end if;
        perform pgbatch._announce(a.queue, a.ready, a.due_at)
           from (select u.queue,
                        count(*) filter (where u.run_at is null or u.run_at <= v_now) as ready,
                        min(u.run_at) filter (where u.run_at > v_now) as due_at
                   from unnest(queues, run_ats) as u(queue, run_at)
                  group by u.queue) a;
        return v_id;
    end if;

    select array_agg(coalesce(u.run_at, v_now) order by u.ord)
      into v_run_at
      from unnest(v_id, run_ats) with ordinality as u(id, run_at, ord);

    -- leaders are inserted: every job without a dedup_key, and the first of
    -- each (queue, dedup_key) in the arrays; a leader that meets a live
    -- duplicate is left out
    select array_agg(case when x.dedup_key is null then x.id else x.first_id end order by x.ord)
      into v_leader
      from (select u.*, first_value(u.id) over (partition by u.queue, u.dedup_key order by u.ord) as first_id
              from unnest(v_id, queues, dedup_keys) with ordinality as u(id, queue, dedup_key, ord)) x;

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
-- later sends a due-time hint (see _announce). The checks are _job_problem's,
-- shared with enqueue_many, enqueue_arrays and ack effects. This is the
-- producer's hot path and runs lean: one check expression, one INSERT, one
-- announcement. Without a dedup_key, a given id (the Python client mints one
-- before its first attempt, to retry lost connections without unknown
-- outcomes) costs one probe of the archive and the primary key as the
-- INSERT's arbiter; a dedup_key is the INSERT's arbiter when no id is given;
-- both together go through _insert_jobs.
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
#variable_conflict use_column
declare
    v_now     timestamptz;
    v_problem text[];
    v_id      uuid;
begin
    if current_setting('pgbatch.relaxed', true) <> '' then
        perform pgbatch._durable_commit();
    end if;
    if id_override is not null and enqueue.dedup_key is not null then
        return (pgbatch._insert_jobs(array[id_override], array[enqueue.queue], array[enqueue.payload],
                                     array[enqueue.run_at], array[enqueue.priority],
                                     array[enqueue.dedup_key], array[enqueue.max_attempts],
                                     numbered => false))[1];
    end if;
    v_now := pgbatch.now();
    v_problem := pgbatch._job_problem(enqueue.queue, enqueue.payload, enqueue.run_at,
                                      enqueue.dedup_key, enqueue.max_attempts, v_now);
    if v_problem is not null then
        perform pgbatch._raise(v_problem[1], v_problem[2]);
    end if;
    if id_override is not null then
        -- unique across live and archived jobs: the archive is probed, the
        -- live table's primary key arbitrates (also against a concurrent
        -- insert of the same id, without a subtransaction)
        v_id := id_override;
        if exists (select 1 from pgbatch.job_archive a where a.id = v_id) then
            perform pgbatch._raise('PB002', format('duplicate job id %s', v_id));
        end if;
        insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, created_at)
        values (v_id, enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0),
                coalesce(enqueue.run_at, v_now), enqueue.max_attempts, v_now)
        on conflict (id) do nothing;
        if not found then
            perform pgbatch._raise('PB002', format('duplicate job id %s', v_id));
        end if;
    elsif enqueue.dedup_key is null then
        v_id := pgbatch.uuid_v7();
        insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, created_at)
        values (v_id, enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0),
                coalesce(enqueue.run_at, v_now), enqueue.max_attempts, v_now);
    else
        v_id := pgbatch.uuid_v7();
        loop
            insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
            values (v_id, enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0),
                    coalesce(enqueue.run_at, v_now), enqueue.max_attempts, enqueue.dedup_key, v_now)
            on conflict (queue, dedup_key) where dedup_key is not null do nothing;
            exit when found;
            -- a live job holds the key: its id; none when it was settled
            -- since the insert looked, then try again
            select j.id into v_id from pgbatch.job j
             where j.queue = enqueue.queue and j.dedup_key = enqueue.dedup_key;
            if found then
                return v_id;
            end if;
            v_id := pgbatch.uuid_v7();
        end loop;
    end if;
    if enqueue.run_at is null or enqueue.run_at <= v_now then
        perform pgbatch._announce(enqueue.queue, 1);
    else
        perform pgbatch._announce(enqueue.queue, 0, enqueue.run_at);
    end if;
    return v_id;
end
$$;

-- ==== queue/functions/033_enqueue_arrays.sql ====
-- enqueue_arrays: the bulk form of enqueue() with one array per field, for
-- programs (the Python client's enqueue_many sends this): no JSON object per
-- request to build, send and decode. Element i of every array is request i;
-- an array given as NULL (or left out) means the default for every request,
-- as does a NULL element:
--   queues        the queue of each job (required, one element per job)
--   payloads      a JSON array with one payload per job (NULL: {} for all)
--   run_ats       NULL: now
--   priorities    NULL: 0
--   dedup_keys    NULL: no key
--   max_attempts  NULL: limits() default_max_attempts
--   ids           NULL: a fresh id
-- Semantics and checks are enqueue_many's (dedup against live jobs and inside
-- the call, given ids probed against live and archived jobs, one NOTIFY per
-- queue, a bad request refused with its index: "invalid enqueue request 3:
-- ..."); arrays of different lengths or more than one dimension, and a
-- payloads value that is not a JSON array of as many elements, are
-- InvalidArgument (PB007). Returns the ids in request order.
create or replace function pgbatch.enqueue_arrays(
    queues       text[],
    payloads     jsonb         default null,
    run_ats      timestamptz[] default null,
    priorities   integer[]     default null,
    dedup_keys   text[]        default null,
    max_attempts integer[]     default null,
    ids          uuid[]        default null
)
returns uuid[]
language plpgsql
as $$
declare
    v_n        integer := coalesce(cardinality(queues), 0);
    v_payloads jsonb[];
    v_attempts integer[];
    v_bad      text;
begin
    if current_setting('pgbatch.relaxed', true) <> '' then
        perform pgbatch._durable_commit();
    end if;
    if queues is null then
        perform pgbatch._raise('PB007', 'enqueue_arrays: queues must be an array of queue names');
    end if;
    select string_agg(format('%s has %s', a.name, case when a.ndims > 1 then a.ndims || ' dimensions' else a.len || ' elements' end), ', ')
      into v_bad
      from (values ('run_ats', array_ndims(run_ats), cardinality(run_ats)),
                   ('priorities', array_ndims(priorities), cardinality(priorities)),
                   ('dedup_keys', array_ndims(dedup_keys), cardinality(dedup_keys)),
                   ('max_attempts', array_ndims(max_attempts), cardinality(max_attempts)),
                   ('ids', array_ndims(ids), cardinality(ids))) as a(name, ndims, len)
     where a.len is not null and (a.ndims > 1 or a.len <> v_n);
    if v_bad is not null or array_ndims(queues) > 1 then
        perform pgbatch._raise('PB007', format(
            'enqueue_arrays: every array must be one-dimensional with one element per queue (%s): %s',
            v_n, coalesce(v_bad, 'queues has more than one dimension')));
    end if;
    if payloads is not null
       and (jsonb_typeof(payloads) <> 'array' or jsonb_array_length(payloads) <> v_n) then
        perform pgbatch._raise('PB007', format(
            'enqueue_arrays: payloads must be a JSON array with one payload per queue (%s), got %s',
            v_n, case when jsonb_typeof(payloads) = 'array'
                      then jsonb_array_length(payloads) || ' elements'
                      else 'a JSON ' || jsonb_typeof(payloads) end));
    end if;
    if v_n = 0 then
        return '{}';
    end if;
    if payloads is null then
        v_payloads := array_fill('{}'::jsonb, array[v_n]);
    else
        select array_agg(e.value order by e.ord) into v_payloads
          from jsonb_array_elements(payloads) with ordinality as e(value, ord);
    end if;
    if max_attempts is null then
        v_attempts := array_fill(pgbatch._limit('default_max_attempts')::integer, array[v_n]);
    elsif array_position(max_attempts, null) is not null then
        select array_agg(coalesce(m.value, pgbatch._limit('default_max_attempts')::integer) order by m.ord)
          into v_attempts
          from unnest(max_attempts) with ordinality as m(value, ord);
    else
        v_attempts := max_attempts;
    end if;
    return pgbatch._insert_jobs(ids, queues, v_payloads, run_ats, priorities, dedup_keys, v_attempts);
end
$$;

-- ==== queue/privileges/020_queue_access.sql (the new row) ====
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('enqueue_arrays',    'producer', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
