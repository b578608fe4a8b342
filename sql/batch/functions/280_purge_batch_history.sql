-- Retention of batch history (BATCH.md decision 5): deletes up to
-- `batch_size` terminal executions (COMPLETED, FAILED, STOPPED, ABANDONED)
-- that ended more than `older_than` ago (database time), with their step
-- executions, contexts, approvals and events (on delete cascade), and then
-- the job instances they leave without any execution. An execution whose
-- instance has an active execution is kept: a restart in progress reads the
-- step history of the executions before it (restart from checkpoint, start
-- limits). Returns the number of executions deleted; call it again while it
-- returns `batch_size`. Safe on many nodes at once (FOR UPDATE SKIP
-- LOCKED). `older_than` is 0 to limits() max_retention_seconds and
-- `batch_size` 1 to 100000 (InvalidArgument, PB007).
create or replace function pgbatch.purge_batch_history(older_than interval default '30 days',
                                                       batch_size integer default 1000)
returns integer
language plpgsql
as $$
declare
    v_now timestamptz := pgbatch.now();
    v_n         integer;
    v_instances bigint[];
begin
    if purge_batch_history.batch_size is null or purge_batch_history.batch_size not between 1 and 100000 then
        perform pgbatch._raise('PB007', 'invalid batch_size: must be 1 to 100000');
    end if;
    if purge_batch_history.older_than is null or purge_batch_history.older_than < interval '0'
       or purge_batch_history.older_than > pgbatch._limit_interval('max_retention_seconds') then
        perform pgbatch._raise('PB007', format('invalid older_than: must be a non-negative interval of at most %s',
                                               justify_hours(pgbatch._limit_interval('max_retention_seconds'))));
    end if;
    perform pgbatch._relax_commit();
    with victims as (
        select x.id from pgbatch.job_execution x
         where x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')
           and x.end_time < v_now - purge_batch_history.older_than
           and not exists (select 1 from pgbatch.job_execution a
                            where a.instance_id = x.instance_id
                              and a.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED',
                                               'AWAITING_APPROVAL', 'UNKNOWN'))
         order by x.end_time, x.id
         limit purge_batch_history.batch_size
           for update skip locked
    ), gone as (
        delete from pgbatch.job_execution x using victims v where x.id = v.id
        returning x.instance_id
    )
    select count(*)::integer, coalesce(array_agg(distinct g.instance_id), '{}') into v_n, v_instances
      from gone g;
    -- a new statement sees the deletions: drop the instances left without an
    -- execution, skipping one a launch holds right now
    delete from pgbatch.job_instance i
     where i.id in (select l.id from pgbatch.job_instance l where l.id = any (v_instances)
                       for update skip locked)
       and not exists (select 1 from pgbatch.job_execution x where x.instance_id = i.id);
    return v_n;
end
$$;
