-- enqueue: inserts one job and returns its id.
--   queue         any non-empty text up to 128 characters
--   payload       any JSON value (at most max_payload_bytes())
--   run_at        not claimable before this time (default: now)
--   priority      higher runs first
--   dedup_key     while a live (pending or claimed) job of this queue has the
--                 same key, returns that job's id and inserts nothing
--   max_attempts  claims allowed before the job is dead-lettered (>= 1)
--   id_override   the job's id; an id already used raises DuplicateJobId (PB002)
-- A job that is claimable now is announced on the queue's channel; a job due
-- later sends a due-time hint (see _announce).
create or replace function pgbatch.enqueue(
    queue        text,
    payload      jsonb       default '{}',
    run_at       timestamptz default null,
    priority     integer     default 0,
    dedup_key    text        default null,
    max_attempts integer     default 20,
    id_override  uuid        default null
)
returns uuid
language plpgsql
as $$
#variable_conflict use_column
declare
    v_now    timestamptz := pgbatch.now();
    v_run_at timestamptz := coalesce(enqueue.run_at, v_now);
    v_id     uuid;
begin
    perform pgbatch._check_job_args(enqueue.queue, enqueue.payload, enqueue.max_attempts);
    perform pgbatch._durable_commit();
    if enqueue.id_override is not null then
        if exists (select 1 from pgbatch.job_archive a where a.id = enqueue.id_override) then
            perform pgbatch._raise('PB002', format('duplicate job id %s', enqueue.id_override));
        end if;
        begin
            insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
            values (enqueue.id_override, enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0), v_run_at,
                    enqueue.max_attempts, enqueue.dedup_key, v_now)
            on conflict (queue, dedup_key) where dedup_key is not null do nothing
            returning j.id into v_id;
        exception when unique_violation then
            perform pgbatch._raise('PB002', format('duplicate job id %s', enqueue.id_override));
        end;
    else
        insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
        values (pgbatch.uuid_v7(), enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0), v_run_at,
                enqueue.max_attempts, enqueue.dedup_key, v_now)
        on conflict (queue, dedup_key) where dedup_key is not null do nothing
        returning j.id into v_id;
    end if;

    if v_id is null then
        -- a live duplicate exists: return its id
        select j.id into v_id from pgbatch.job j where j.queue = enqueue.queue and j.dedup_key = enqueue.dedup_key;
        if v_id is null then
            -- it was settled between our insert and this read: try again
            return pgbatch.enqueue(enqueue.queue, enqueue.payload, enqueue.run_at, enqueue.priority,
                                      enqueue.dedup_key, enqueue.max_attempts, enqueue.id_override);
        end if;
        return v_id;
    end if;

    if v_run_at <= v_now then
        perform pgbatch._announce(enqueue.queue, 1);
    else
        perform pgbatch._announce(enqueue.queue, 0, v_run_at);
    end if;
    return v_id;
end
$$;
