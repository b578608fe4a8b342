-- cancel_job: a pending job is cancelled at once (archived as 'cancelled',
-- returns 'cancelled'); a claimed job is flagged (returns
-- 'cancel_requested'): its next renew_lease raises JobCancelled (PB009), and
-- when it is nacked, released or its lease is reaped it ends cancelled (an
-- ack still marks it done: the work completed). Cancelling a cancelled job
-- returns 'cancelled' again. InvalidState (PB004) for a done or dead job;
-- JobNotFound (PB003) for an unknown id.
create or replace function pgbatch.cancel_job(job_id uuid)
returns text
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_state text;
begin
    select * into r from pgbatch.job j where j.id = cancel_job.job_id for update;
    if found then
        if r.state = 'pending' then
            delete from pgbatch.job j where j.id = r.id;
            perform pgbatch._archive(r, 'cancelled', null, '{"op": "cancel"}');
            return 'cancelled';
        end if;
        update pgbatch.job j set cancel_requested = true where j.id = r.id;
        return 'cancel_requested';
    end if;
    select a.state into v_state from pgbatch.job_archive a where a.id = cancel_job.job_id;
    if v_state = 'cancelled' then
        return 'cancelled';
    elsif v_state is not null then
        perform pgbatch._raise('PB004', format('job %s is %s and cannot be cancelled', job_id, v_state));
    end if;
    perform pgbatch._raise('PB003', format('job %s not found', job_id));
    return null;
end
$$;
