-- How many occurrences `spec` has in `tz` in (after, until], counted without
-- enumerating them, or NULL when this count does not apply (then the caller
-- enumerates: _cron_missed). It applies when the range spans at most 400 days
-- and the zone's UTC offset is the same everywhere within two days of it
-- (always in the zones _tz_fixed names; elsewhere checked every 6 hours
-- from two days before `after` to two days after `until`): no gap or fold is
-- then near, every matching local time in (after, until] shifted by that
-- offset is exactly one occurrence, and the count is calendar arithmetic:
-- matching days times the times of day each has, corrected at both ends by
-- the times of day up to `after` and `until` (whole seconds). Ranges near a
-- DST transition, or longer, are left to the enumeration, which is exact
-- there and capped. The same set as _cron_next_after enumerates (a property
-- test checks it, tests/test_cron.py).
create or replace function pgbatch._cron_count(spec pgbatch.cron_spec, tz text, after timestamptz,
                                               until timestamptz)
returns bigint
language plpgsql
immutable
parallel safe
as $$
declare
    v_offset   interval;
    v_from     timestamp;
    v_to       timestamp;
    v_per_day  bigint;
    v_days     bigint;
begin
    if until <= after then
        return 0;
    end if;
    if until - after > interval '400 days' then
        return null;
    end if;
    if pgbatch._tz_fixed(tz) then
        v_offset := pgbatch._tz_offset(tz, after);
    else
        v_offset := pgbatch._tz_offset(tz, after - interval '2 days');
        if pgbatch._tz_offset(tz, until + interval '2 days') <> v_offset
           or exists (select 1
                        from generate_series(after - interval '2 days', until + interval '2 days',
                                             interval '6 hours') p
                       where pgbatch._tz_offset(tz, p) <> v_offset) then
            return null;
        end if;
    end if;
    v_from := (after at time zone 'UTC') + v_offset;
    v_to := (until at time zone 'UTC') + v_offset;
    v_per_day := cardinality(spec.hours)::bigint * cardinality(spec.minutes) * cardinality(spec.seconds);
    -- matching days in [day of v_from, day of v_to): each has all v_per_day times
    v_days := 0;
    if date_trunc('day', v_from) < date_trunc('day', v_to) then
        select count(*) into v_days
          from generate_series(date_trunc('day', v_from), date_trunc('day', v_to) - interval '1 day',
                               interval '1 day') d
         where extract(month from d)::int = any(spec.months) and pgbatch._cron_day_matches(spec, d);
    end if;
    return v_days * v_per_day
           + pgbatch._cron_count_day_until(spec, v_to)
           - pgbatch._cron_count_day_until(spec, v_from);
end
$$;
