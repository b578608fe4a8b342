-- The latest occurrence of cron expression `expr` in IANA time zone `tz` at
-- or before `at`, or NULL if there is none since 1900-01-01. Direct (it does
-- not walk the occurrences between), and the same occurrences as cron_next
-- and cron_occurrences: cron_next(expr, tz, cron_prev(expr, tz, t)) > t.
-- Raises InvalidCron (PB020), InvalidTimeZone (PB021), InvalidTime (PB013).
create or replace function pgbatch.cron_prev(expr text, tz text, at timestamptz)
returns timestamptz
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('at', at));
    return pgbatch._cron_prev_at(v_spec, tz, at);
end
$$;
