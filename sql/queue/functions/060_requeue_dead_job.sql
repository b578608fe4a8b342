-- requeue_dead_job: revives a dead job as pending at `run_at` (default now)
-- with a fresh attempt count; returns its id. JobNotFound (PB003) when no
-- dead record exists (never created, or swept by retention); InvalidState
-- (PB004) when the job is not dead; DedupConflict (PB010) when a live job
-- already holds its dedup_key; DuplicateJobId (PB002) when a live job has its
-- id (a pair left by an older pgbatch, see _archive); InvalidTime (PB013)
-- for a run_at that is not finite or too far from now. Nothing changes
-- when it refuses.
-- `request_id` (optional) makes a retried call safe: the first call that
-- succeeds with it records (job_id, request_id) in pgbatch.job_request in
-- its own transaction; a later call with the same request_id for the same
-- job returns the job's id again and changes nothing, whatever the job's
-- state is now (pending, claimed, done, dead again, or swept), and its
-- run_at is ignored. A concurrent second call waits for the first one's
-- commit. A refused call records nothing, so its retry is tried afresh. A
-- different request_id (or none) behaves as a first call.
create or replace function pgbatch.requeue_dead_job(job_id uuid, run_at timestamptz default null,
    request_id uuid default null)
returns uuid
language plpgsql
as $$
declare
    a       pgbatch.job_archive;
    v_now   timestamptz := pgbatch.now();
    v_at    timestamptz := coalesce(requeue_dead_job.run_at, v_now);
    v_state text;
begin
    if requeue_dead_job.request_id is not null and requeue_dead_job.job_id is not null then
        insert into pgbatch.job_request (job_id, request_id, kind, requested_at)
        values (requeue_dead_job.job_id, requeue_dead_job.request_id, 'requeue_dead', v_now)
        on conflict do nothing;
        if not found then
            return requeue_dead_job.job_id;  -- a repeat of a call that succeeded
        end if;
    end if;
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
