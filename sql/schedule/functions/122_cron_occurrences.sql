-- The occurrences of cron expression `expr` in IANA time zone `tz` in
-- (after, until], ascending, at most `max_count` (1 to 10000, default 1000:
-- the scheduler's scan cap). Empty when until <= after. De-duplicated: a gap
-- can map two local times to one instant. Raises InvalidCron (PB020),
-- InvalidTimeZone (PB021), InvalidTime (PB013, `after` or `until` NULL,
-- infinite or outside 1900..2200), InvalidArgument (PB007, max_count).
create or replace function pgbatch.cron_occurrences(expr text, tz text, after timestamptz,
                                                    until timestamptz, max_count integer default 1000)
returns setof timestamptz
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('after', after));
    perform pgbatch._check(pgbatch._cron_time_problem('until', until));
    if max_count is null or max_count < 1 or max_count > 10000 then
        perform pgbatch._raise('PB007', format('invalid max_count: %s, must be 1 to 10000',
                                               coalesce(max_count::text, 'NULL')));
    end if;
    return query select * from pgbatch._cron_between(v_spec, tz, after, until, max_count);
end
$$;
