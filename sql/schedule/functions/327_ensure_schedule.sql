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
