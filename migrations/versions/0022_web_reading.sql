-- pgbatch migration 0022_web_reading: the read functions of the web
-- dashboard. web_nodes (the worker nodes with heartbeat age and liveness)
-- and metrics (every /metrics gauge from one query), both new, both admin
-- reports. Nothing existing changes.
-- FROZEN: never edit this file after release; 0022_web_reading.py pins its sha256.

-- ==== queue/functions/095_web_nodes.sql ====
-- web_nodes: the registered worker nodes, most recently heard from first,
-- with how long ago each heartbeat was (by the database clock) and whether
-- the node counts as alive: its last heartbeat is younger than
-- `stale_after` (default 60 seconds, a few maintenance intervals). A node
-- that stopped cleanly deregistered and is not listed. InvalidArgument
-- (PB007) for a NULL, negative or over-a-day stale_after.
create or replace function pgbatch.web_nodes(stale_after interval default '60 seconds')
returns table (node_id text, boot_id uuid, started_at timestamptz, heartbeat_at timestamptz,
               heartbeat_age interval, alive boolean, info jsonb)
language plpgsql
stable
as $$
declare
    v_now timestamptz := pgbatch.now();
begin
    if web_nodes.stale_after is null or web_nodes.stale_after <= interval '0'
       or web_nodes.stale_after > interval '1 day' then
        perform pgbatch._raise('PB007', format('invalid stale_after: %s, must be more than 0 and at most 1 day',
                                               coalesce(web_nodes.stale_after::text, 'NULL')));
    end if;
    return query
    select n.node_id, n.boot_id, n.started_at, n.heartbeat_at, v_now - n.heartbeat_at,
           v_now - n.heartbeat_at < web_nodes.stale_after, n.info
      from pgbatch.node n
     order by n.heartbeat_at desc, n.node_id;
end
$$;

-- ==== queue/functions/096_web_metrics.sql ====
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

-- ==== queue/privileges/026_web_access.sql ====
-- Who may execute the web server's read functions (see
-- sql/core/schema/090_function_access.sql): operator reports, admin only.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('web_nodes', 'admin', true),
    ('metrics',   'admin', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
