-- pgbatch migration 0016_schedules_more: schedules defined in code
-- (ensure_schedule, granted to workers, which call it at start) and the
-- scheduler invariant I8 as a query (_schedule_invariant_violations).
-- FROZEN: never edit this file after release; 0016_schedules_more.py pins its sha256.

-- ==== schedule/functions/327_ensure_schedule.sql ====
-- Creates schedule `schedule_id`, or brings an existing one to the given
-- definition: what workers call at start for the schedules defined in code
-- (docs/schedules.md "Schedules in code"). The arguments are those of
-- create_schedule. A schedule that does not exist is created (enabled as
-- given); one that exists is changed with update_schedule's rules: a
-- definition equal to the stored one changes nothing (the version stays); a
-- changed timing (kind, cron_expr, tz, every, anchor, once_at) moves
-- effective_from to now and keeps the watermark, so a change never fires an
-- occurrence retroactively; an interval schedule given no anchor keeps its
-- anchor; a NULL catchup_window removes the catch-up. `enabled` of an
-- existing schedule is left alone (pausing is the operator's). Two callers
-- at once are safe: one creates, the other finds it and changes nothing.
-- Refusals change nothing: those of create_schedule and update_schedule.
create or replace function pgbatch.ensure_schedule(
    schedule_id       text,
    kind              text,
    cron_expr         text        default null,
    tz                text        default 'UTC',
    every             interval    default null,
    anchor            timestamptz default null,
    once_at           timestamptz default null,
    queue             text        default null,
    payload           jsonb       default null,
    job_name          text        default null,
    params            jsonb       default null,
    misfire_threshold interval    default '60 seconds',
    catchup_window    interval    default null,
    overlap_policy    text        default 'allow',
    enabled           boolean     default true
)
returns pgbatch.schedule_info
language plpgsql
as $$
begin
    if not exists (select 1 from pgbatch.schedule s where s.id = ensure_schedule.schedule_id) then
        begin
            return pgbatch.create_schedule(
                schedule_id => schedule_id, kind => kind, cron_expr => cron_expr, tz => tz,
                every => every, anchor => anchor, once_at => once_at, queue => queue,
                payload => payload, job_name => job_name, params => params,
                misfire_threshold => misfire_threshold, catchup_window => catchup_window,
                overlap_policy => overlap_policy, enabled => enabled);
        exception when sqlstate 'PB062' then
            null;  -- created by another caller meanwhile: bring it to the definition below
        end;
    end if;
    if kind is null then
        perform pgbatch._raise('PB061', format('schedule %s: invalid kind NULL, must be cron, '
                                               'interval, once or manual', schedule_id));
    end if;
    return pgbatch.update_schedule(
        schedule_id => schedule_id, kind => kind, cron_expr => cron_expr,
        tz => coalesce(tz, 'UTC'), every => every, anchor => anchor, once_at => once_at,
        queue => queue, payload => case when queue is not null then coalesce(payload, '{}') end,
        job_name => job_name,
        params => case when job_name is not null then coalesce(params, '{}') end,
        misfire_threshold => coalesce(misfire_threshold, interval '60 seconds'),
        catchup_window => coalesce(catchup_window,
                                   (select interval '0' from pgbatch.schedule s
                                     where s.id = ensure_schedule.schedule_id
                                       and s.catchup_window is not null)),
        overlap_policy => coalesce(overlap_policy, 'allow'));
end
$$;

-- ==== schedule/functions/390_schedule_invariant_violations.sql ====
-- The scheduler invariant I8 of BATCH.md §8, as far as the rows can show it,
-- as one row per violation (invariant, detail); no row when it holds. Tests
-- call it after every scheduler test (tests/schedule_helpers.py).
--   I8.key       at most one ledger row per (schedule, source, fire_at) and per
--                (schedule, request_id)
--   I8.run       a fired row has exactly one run (queue job or batch
--                execution) and names it; a row not fired has none; the run
--                exists and names the same fire; no fire has two queue jobs
--   I8.watermark no fire of source 'schedule' lies after its schedule's
--                watermark; the latest one is the watermark; the next due
--                occurrence lies after the watermark (nothing at or before
--                the watermark is due again)
create or replace function pgbatch._schedule_invariant_violations()
returns table (invariant text, detail text)
language sql
stable
as $$
    select 'I8.key', format('fire %s/%s/%s is recorded %s times', f.schedule_id, f.source, f.fire_at, count(*))
      from pgbatch.schedule_fire f
     group by f.schedule_id, f.source, f.fire_at having count(*) > 1
    union all
    select 'I8.key', format('request %s of schedule %s is recorded %s times', f.request_id, f.schedule_id, count(*))
      from pgbatch.schedule_fire f
     where f.request_id is not null
     group by f.schedule_id, f.request_id having count(*) > 1
    union all
    select 'I8.run', format('fire %s/%s/%s (%s): %s', f.schedule_id, f.source, f.fire_at, f.outcome, p.problem)
      from pgbatch.schedule_fire f
     cross join lateral (values (
         case
           when f.outcome = 'fired' and num_nonnulls(f.job_id, f.job_execution_id) <> 1
             then 'fired without exactly one run'
           when f.outcome <> 'fired' and num_nonnulls(f.job_id, f.job_execution_id) <> 0
             then 'not fired but has a run'
           when f.job_id is not null
                and (select count(*)
                       from (select j.payload from pgbatch.job j where j.id = f.job_id
                             union all
                             select a.payload from pgbatch.job_archive a where a.id = f.job_id) r
                      where r.payload -> 'schedule' ->> 'id' = f.schedule_id
                        and r.payload -> 'schedule' ->> 'source' = f.source
                        and (r.payload -> 'schedule' ->> 'fire_at')::timestamptz = f.fire_at) <> 1
             then format('queue job %s missing or not naming this fire', f.job_id)
           when f.job_execution_id is not null
                and not exists (select 1 from pgbatch.job_execution x
                                 where x.id = f.job_execution_id
                                   and x.schedule_id = f.schedule_id and x.fire_at = f.fire_at)
             then format('execution %s missing or not naming this fire', f.job_execution_id)
         end)) p(problem)
     where p.problem is not null
    union all
    select 'I8.run', format('fire %s/%s/%s has %s queue jobs', r.sid, r.src, r.fat, count(*))
      from (select j.payload -> 'schedule' ->> 'id' as sid, j.payload -> 'schedule' ->> 'source' as src,
                   j.payload -> 'schedule' ->> 'fire_at' as fat
              from pgbatch.job j where j.payload ? 'schedule' and jsonb_typeof(j.payload -> 'schedule') = 'object'
            union all
            select a.payload -> 'schedule' ->> 'id', a.payload -> 'schedule' ->> 'source',
                   a.payload -> 'schedule' ->> 'fire_at'
              from pgbatch.job_archive a where a.payload ? 'schedule' and jsonb_typeof(a.payload -> 'schedule') = 'object') r
     where r.sid is not null and r.src is not null and r.fat is not null
     group by r.sid, r.src, r.fat having count(*) > 1
    union all
    select 'I8.watermark', format('schedule %s: fire %s lies after its watermark %s', s.id, f.fire_at, s.last_fire_at)
      from pgbatch.schedule s join pgbatch.schedule_fire f on f.schedule_id = s.id
     where f.source = 'schedule' and (s.last_fire_at is null or f.fire_at > s.last_fire_at)
    union all
    select 'I8.watermark', format('schedule %s: watermark %s is not its latest fire %s', s.id, s.last_fire_at, l.latest)
      from pgbatch.schedule s
     cross join lateral (select max(f.fire_at) latest from pgbatch.schedule_fire f
                          where f.schedule_id = s.id and f.source = 'schedule') l
     where l.latest is not null and l.latest is distinct from s.last_fire_at
    union all
    select 'I8.watermark', format('schedule %s: next due %s is not after its watermark %s', s.id, s.next_due_at, s.last_fire_at)
      from pgbatch.schedule s
     where s.next_due_at <= s.last_fire_at
$$;

-- ==== schedule/privileges/030_schedule_access.sql (the new row) ====
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('ensure_schedule',   'worker', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
