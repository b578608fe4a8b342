-- Whether a run started by a recent fire of schedule `schedule_id` (any
-- source) is still active: its queue job is live (pending or claimed), or its
-- batch execution has not ended. Looks at the 100 latest fired rows (the
-- overlap policies keep active fires among the latest).
create or replace function pgbatch._schedule_overlap_active(schedule_id text)
returns boolean
language sql
stable
as $$
    select exists (
        select 1
          from (select f.job_id, f.job_execution_id
                  from pgbatch.schedule_fire f
                 where f.schedule_id = _schedule_overlap_active.schedule_id and f.outcome = 'fired'
                 order by f.decided_at desc
                 limit 100) f
         where (f.job_id is not null and exists (select 1 from pgbatch.job j where j.id = f.job_id))
            or (f.job_execution_id is not null
                and exists (select 1 from pgbatch.job_execution x
                             where x.id = f.job_execution_id
                               and x.status not in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED'))))
$$;
