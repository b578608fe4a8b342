-- The batch invariants of BATCH.md §8 that the rows can show, as one row per
-- violation (invariant, detail); no row when all hold. Tests call it after
-- every batch test.
--   I1  at most one active execution per instance
--   I2  no execution after a COMPLETED or ABANDONED one of the same instance;
--       a terminal execution's events never leave the terminal status (except
--       FAILED/STOPPED -> ABANDONED); a terminal execution has no running step
--   I4  chunk_seq = commit_count of every step execution
--   I5  a running execution (STARTING, STARTED, STOPPING, PAUSING) has a live
--       work item that is its current one; a terminal one has none live
--   I6  step rows: at most one per step of the definition
--   I7  exactly one `launched` event per execution, first; the status the
--       last status-changing event reports is the execution's status
create or replace function pgbatch._batch_invariant_violations()
returns table (invariant text, detail text)
language sql
stable
as $$
    select 'I1', format('instance %s has %s active executions', x.instance_id, count(*))
      from pgbatch.job_execution x
     where x.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED', 'AWAITING_APPROVAL', 'UNKNOWN')
     group by x.instance_id having count(*) > 1
    union all
    select 'I2', format('execution %s follows execution %s (%s) of instance %s', l.id, f.id, f.status, f.instance_id)
      from pgbatch.job_execution f join pgbatch.job_execution l on l.instance_id = f.instance_id and l.id > f.id
     where f.status in ('COMPLETED', 'ABANDONED')
    union all
    select 'I2', format('execution %s: event %s %s -> %s after it was terminal', ev.job_execution_id, ev.id,
                        ev.from_status, ev.to_status)
      from pgbatch.execution_event ev
     where ev.from_status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')
       and not (ev.from_status in ('FAILED', 'STOPPED') and ev.to_status = 'ABANDONED')
    union all
    select 'I2', format('execution %s is %s but step %s is %s', x.id, x.status, s.step_name, s.status)
      from pgbatch.job_execution x join pgbatch.step_execution s on s.job_execution_id = x.id
     where x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')
       and s.status in ('STARTING', 'STARTED', 'PAUSED', 'UNKNOWN')
    union all
    select 'I4', format('step execution %s: chunk_seq %s, commit_count %s', s.id, c.chunk_seq, s.commit_count)
      from pgbatch.step_execution s join pgbatch.step_execution_context c on c.step_execution_id = s.id
     where c.chunk_seq <> s.commit_count
    union all
    select 'I4', format('step execution %s has no context row', s.id)
      from pgbatch.step_execution s
     where not exists (select 1 from pgbatch.step_execution_context c where c.step_execution_id = s.id)
    union all
    select 'I5', format('execution %s is %s without a live current work item (%s)', x.id, x.status, x.queue_job_id)
      from pgbatch.job_execution x
     where x.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING')
       and not exists (select 1 from pgbatch.job j where j.id = x.queue_job_id
                          and j.payload ->> 'kind' = 'batch_step'
                          and (j.payload ->> 'execution_id')::bigint = x.id)
    union all
    select 'I5', format('execution %s is %s but its work item %s is live and not cancelled', x.id, x.status, j.id)
      from pgbatch.job_execution x join pgbatch.job j on j.id = x.queue_job_id
     where x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED') and not j.cancel_requested
    union all
    select 'I6', format('execution %s has %s step rows for %s steps', x.id, count(s.id),
                        jsonb_array_length(min(d.definition::text)::jsonb -> 'steps'))
      from pgbatch.job_execution x
      join pgbatch.job_instance i on i.id = x.instance_id
      join pgbatch.job_definition d on d.job_name = i.job_name and d.fingerprint = x.definition_fp
      join pgbatch.step_execution s on s.job_execution_id = x.id
     group by x.id having count(s.id) > jsonb_array_length(min(d.definition::text)::jsonb -> 'steps')
    union all
    select 'I7', format('execution %s has %s launched events', x.id,
                        (select count(*) from pgbatch.execution_event e where e.job_execution_id = x.id and e.kind = 'launched'))
      from pgbatch.job_execution x
     where (select count(*) from pgbatch.execution_event e where e.job_execution_id = x.id and e.kind = 'launched') <> 1
        or (select e.kind from pgbatch.execution_event e where e.job_execution_id = x.id order by e.id limit 1) <> 'launched'
    union all
    select 'I7', format('execution %s is %s but its last status event says %s', x.id, x.status, le.to_status)
      from pgbatch.job_execution x
      cross join lateral (select e.to_status from pgbatch.execution_event e
                           where e.job_execution_id = x.id and e.to_status is not null
                           order by e.id desc limit 1) le
     where le.to_status <> x.status
$$;
