-- pgbatch migration 0025_schedule_occurrences: schedule_occurrences, the next
-- occurrences of a schedule's timing (cron, interval, once) by the
-- scheduler's own rule, new, open to every pgbatch role (the dashboard
-- wizard's preview). Nothing existing changes.
-- FROZEN: never edit this file after release; 0025_schedule_occurrences.py pins its sha256.

-- ==== schedule/functions/328_schedule_occurrences.sql ====
-- The next occurrences of a schedule's timing, as create_schedule takes it
-- (kind, cron_expr, tz, every, anchor, once_at), strictly after `after`
-- (default: now), ascending, at most `max_count` (1 to 1000): the instants
-- the scheduler makes due, by its own rule (_schedule_next_after_parsed, what
-- create_schedule, update_schedule and tick_schedules use). An interval
-- without an anchor counts from `after`, as create_schedule anchors a new
-- schedule at its creation time. A manual schedule has none, a once schedule
-- at most one. Reads no table, changes nothing. Refusals: create_schedule's
-- for the timing fields (InvalidSchedule PB061: kind, a field of another
-- kind, every; InvalidCron PB020; InvalidTimeZone PB021; InvalidTime PB013
-- for anchor, once_at and after); InvalidArgument (PB007) for max_count.
create or replace function pgbatch.schedule_occurrences(
    kind      text,
    cron_expr text        default null,
    tz        text        default 'UTC',
    every     interval    default null,
    anchor    timestamptz default null,
    once_at   timestamptz default null,
    after     timestamptz default null,
    max_count integer     default 10
)
returns setof timestamptz
language plpgsql
stable
as $$
declare
    v_after constant timestamptz := coalesce(schedule_occurrences.after, pgbatch.now());
    s      pgbatch.schedule;
    v_spec pgbatch.cron_spec;
    v_at   timestamptz;
begin
    if max_count is null or max_count < 1 or max_count > 1000 then
        perform pgbatch._raise('PB007', format('invalid max_count: %s, must be 1 to 1000',
                                               coalesce(max_count::text, 'NULL')));
    end if;
    perform pgbatch._check(pgbatch._cron_time_problem('after', v_after));
    -- the timing fields checked as create_schedule checks them (a stand-in name and target)
    s.id := 'preview';
    s.kind := schedule_occurrences.kind;
    s.cron_expr := schedule_occurrences.cron_expr;
    s.tz := coalesce(schedule_occurrences.tz, 'UTC');
    s.every := schedule_occurrences.every;
    s.anchor := case when schedule_occurrences.kind = 'interval' and schedule_occurrences.every is not null
                     then coalesce(schedule_occurrences.anchor, v_after)
                     else schedule_occurrences.anchor end;
    s.once_at := schedule_occurrences.once_at;
    s.queue := 'preview';
    s.misfire_threshold := interval '0';
    s.overlap_policy := 'allow';
    s := pgbatch._schedule_checked(s);
    if s.kind = 'cron' then
        v_spec := pgbatch.cron_parse(s.cron_expr);
    end if;
    v_at := v_after;
    for i in 1 .. max_count loop
        v_at := pgbatch._schedule_next_after_parsed(s, v_spec, v_at);
        exit when v_at is null;
        return next v_at;
    end loop;
end
$$;

-- ==== schedule/privileges/031_schedule_occurrences_access.sql ====
-- schedule_occurrences (the next occurrences of a schedule's timing, the
-- dashboard wizard's preview) reads no table, like the cron functions, but
-- runs the scheduler's internal helpers: SECURITY DEFINER, open to every
-- pgbatch role.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('schedule_occurrences', 'producer', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
