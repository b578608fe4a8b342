-- The least and the greatest UTC offset of `tz` in effect within two days of
-- `at`: the evaluation's bound on how far a local time and its instant lie
-- apart around `at`.
create or replace function pgbatch._cron_offset_bounds(tz text, at timestamptz,
                                                       out least_offset interval,
                                                       out greatest_offset interval)
language sql
immutable
parallel safe
as $$
    select least(a, b, c), greatest(a, b, c)
      from (select pgbatch._tz_offset(tz, at - interval '2 days') as a,
                   pgbatch._tz_offset(tz, at) as b,
                   pgbatch._tz_offset(tz, at + interval '2 days') as c) o
$$;
