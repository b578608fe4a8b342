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
