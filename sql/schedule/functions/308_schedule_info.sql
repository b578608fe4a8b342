-- A schedule row as schedule_info (what schedules() and the lifecycle
-- functions return).
create or replace function pgbatch._schedule_info(s pgbatch.schedule)
returns pgbatch.schedule_info
language sql
stable
as $$
    select row(s.id, s.kind, s.cron_expr, s.tz, s.every, s.anchor, s.once_at, s.target, s.queue,
               s.payload, s.job_name, s.params, s.misfire_threshold, s.catchup_window,
               s.overlap_policy, s.enabled, s.paused_at, s.effective_from, s.last_fire_at,
               s.next_due_at, s.coalesced_total, s.last_outcome, s.last_decided_at, s.version,
               s.created_at, s.updated_at)::pgbatch.schedule_info
$$;
