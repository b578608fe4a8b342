-- Fires the occurrences of schedule `schedule_id` from `from_time` to
-- `to_time` (both included; at most 1000, and not in the future), each as
-- a ledger row with source 'backfill' and its queue job or batch launch, in
-- one transaction; occurrences backfilled before are left alone (not
-- returned). The watermark does not move. Occurrences at or before the
-- watermark (decided by the schedule already) are refused unless `force`.
-- Returns the new fires, oldest first. Refusals change nothing:
-- ScheduleNotFound (PB060), InvalidSchedule (PB061: a manual schedule has no
-- occurrences), InvalidTime (PB013), InvalidArgument (PB007: reversed range,
-- more than 1000 occurrences, decided ones without force).
create or replace function pgbatch.backfill_schedule(schedule_id text, from_time timestamptz,
                                                     to_time timestamptz, force boolean default false)
returns setof pgbatch.schedule_fire_info
language plpgsql
as $$
declare
    v_now  constant timestamptz := pgbatch.now();
    s      pgbatch.schedule;
    v_at   timestamptz;
    v_all  timestamptz[] := '{}';
    v_fire pgbatch.schedule_fire;
begin
    perform pgbatch._check(pgbatch._cron_time_problem('from_time', from_time));
    perform pgbatch._check(pgbatch._cron_time_problem('to_time', to_time));
    if to_time < from_time then
        perform pgbatch._raise('PB007', format('invalid backfill range: to_time %s is before from_time %s',
                                               to_time, from_time));
    end if;
    if to_time > v_now then
        perform pgbatch._raise('PB013', format('invalid to_time %s: in the future (now is %s)', to_time, v_now),
                               'future occurrences fire by themselves');
    end if;
    s := pgbatch._schedule_lock(schedule_id);
    if s.kind = 'manual' then
        perform pgbatch._raise('PB061', format('schedule %s is manual: it has no occurrences to backfill '
                                               '(use trigger_schedule)', s.id));
    end if;
    v_at := pgbatch._schedule_next_after(s, from_time - interval '1 microsecond');
    while v_at is not null and v_at <= to_time loop
        if cardinality(v_all) = 1000 then
            perform pgbatch._raise('PB007', format('invalid backfill range: more than 1000 occurrences of '
                                                   'schedule %s from %s to %s', s.id, from_time, to_time));
        end if;
        if v_at <= s.last_fire_at and not coalesce(force, false) then
            perform pgbatch._raise('PB007', format('invalid backfill range: occurrence %s of schedule %s is at or '
                                                   'before its watermark %s', v_at, s.id, s.last_fire_at),
                                   'pass force => true to fire decided occurrences again');
        end if;
        v_all := v_all || v_at;
        v_at := pgbatch._schedule_next_after(s, v_at);
    end loop;
    foreach v_at in array v_all loop
        v_fire := pgbatch._schedule_record_fire(s, 'backfill', v_at, 'fired', 0, false, null, null, v_now);
        if v_fire.schedule_id is not null then
            return next pgbatch._schedule_fire_info(v_fire);
        end if;
    end loop;
end
$$;
