-- The first occurrence of `spec` in `tz` strictly after `after`, or NULL if
-- there is none before 2200. The occurrences are the instants of every
-- matching local wall-clock time (_cron_instants); this scans the matching
-- local times forward from the earliest one that could map after `after`, and
-- stops as soon as no later local time can map before the best found (around
-- a transition local order and instant order differ by the offset change).
-- _cron_prev_at is its mirror: both are the same set, so they agree. In a
-- zone of one offset (_tz_fixed) the first matching local time is the answer.
create or replace function pgbatch._cron_next_after(spec pgbatch.cron_spec, tz text, after timestamptz)
returns timestamptz
language plpgsql
immutable
parallel safe
as $$
declare
    v_every_hour constant boolean := cardinality(spec.hours) = 24;
    v_bounds record;
    v_offset interval;
    v_local timestamp;
    v_stop timestamp;
    v_best timestamptz;
    v_at timestamptz;
begin
    if pgbatch._tz_fixed(tz) then
        -- one offset: local order is instant order, no gap, no fold
        v_offset := pgbatch._tz_offset(tz, after);
        v_local := pgbatch._cron_next_local(spec, (after at time zone 'UTC') + v_offset
                                                  + interval '1 microsecond');
        v_best := (v_local - v_offset) at time zone 'UTC';
        return case when v_best < timestamptz '2200-01-01 00:00Z' then v_best end;
    end if;
    v_bounds := pgbatch._cron_offset_bounds(tz, after);
    -- a local time at or before this maps at or before `after`
    v_local := pgbatch._cron_next_local(spec, (after at time zone 'UTC') + v_bounds.least_offset
                                              + interval '1 microsecond');
    while v_local is not null and (v_stop is null or v_local < v_stop) loop
        foreach v_at in array pgbatch._cron_instants(tz, v_local, v_every_hour) loop
            if v_at > after and (v_best is null or v_at < v_best) then
                v_best := v_at;
                -- a local time from here on maps at or after v_best
                v_stop := (v_best at time zone 'UTC')
                          + (pgbatch._cron_offset_bounds(tz, v_best)).greatest_offset;
            end if;
        end loop;
        v_local := pgbatch._cron_next_local(spec, v_local + interval '1 second');
    end loop;
    return case when v_best < timestamptz '2200-01-01 00:00Z' then v_best end;
end
$$;
