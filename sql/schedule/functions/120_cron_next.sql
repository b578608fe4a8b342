-- The first occurrence of cron expression `expr` in IANA time zone `tz`
-- strictly after `after`, or NULL if there is none before 2200-01-01.
-- Raises InvalidCron (PB020), InvalidTimeZone (PB021), InvalidTime (PB013,
-- `after` NULL, infinite or outside 1900..2200). docs/schedules.md.
create or replace function pgbatch.cron_next(expr text, tz text, after timestamptz)
returns timestamptz
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('after', after));
    return pgbatch._cron_next_after(v_spec, tz, after);
end
$$;
