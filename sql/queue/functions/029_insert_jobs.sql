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
