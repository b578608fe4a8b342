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
