-- metrics: every gauge the web server's /metrics exposes, from one query
-- (one row per metric and label). Cheap by construction: the per-queue
-- counts are queue_stats() (the live table, as small as the backlog, and
-- the summed archive counters); runs by status count job_execution;
-- pending approvals and schedule lag read the small approval and schedule
-- tables. Rows:
--   queue_jobs          label = state (pending, scheduled, claimed), per queue
--   queue_finished      label = state (done, dead, cancelled): archived totals
--                       not yet swept, per queue
--   queue_oldest_pending_seconds  per queue (0 when nothing is pending)
--   queue_paused        1 or 0, per queue
--   runs                label = batch execution status, count
--   approvals_pending   count of PENDING approval gates
--   schedule_lag_seconds  per enabled schedule (label = its id): now minus
--                       its next due time, 0 when not yet due
create or replace function pgbatch.metrics()
returns table (metric text, queue text, label text, value double precision)
language sql
stable
as $$
    with s as (select * from pgbatch.queue_stats(null))
    select 'queue_jobs', s.queue, x.label, x.value::double precision
      from s, lateral (values ('pending', s.pending), ('scheduled', s.scheduled),
                              ('claimed', s.claimed)) x(label, value)
    union all
    select 'queue_finished', s.queue, x.label, x.value::double precision
      from s, lateral (values ('done', s.done), ('dead', s.dead),
                              ('cancelled', s.cancelled)) x(label, value)
    union all
    select 'queue_oldest_pending_seconds', s.queue, null,
           coalesce(extract(epoch from s.oldest_pending_age), 0)::double precision
      from s
    union all
    select 'queue_paused', s.queue, null, case when s.paused then 1 else 0 end
      from s
    union all
    (select 'runs', null, e.status, count(*)::double precision
       from pgbatch.job_execution e
      group by e.status)
    union all
    select 'approvals_pending', null, null, count(*)::double precision
      from pgbatch.approval a
     where a.status = 'PENDING'
    union all
    select 'schedule_lag_seconds', null, sc.id,
           greatest(0, extract(epoch from pgbatch.now() - sc.next_due_at))::double precision
      from pgbatch.schedule sc
     where sc.enabled and sc.next_due_at is not null
$$;
