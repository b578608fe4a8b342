-- The occurrences of cron expression `expr` in IANA time zone `tz` in
-- (after, until], summarised as the scheduler decides a missed fire: the
-- `latest` one, how many (`occurrences`), and whether the count stopped at
-- `max_scan` (1 to 10000, default 1000: then `occurrences` means "at least
-- max_scan", and `latest` still is the exact latest, found directly). Bounded
-- work however far back `after` is. Raises InvalidCron (PB020),
-- InvalidTimeZone (PB021), InvalidTime (PB013), InvalidArgument (PB007,
-- max_scan).
create or replace function pgbatch.cron_missed(expr text, tz text, after timestamptz,
                                               until timestamptz, max_scan integer default 1000,
                                               out latest timestamptz, out occurrences integer,
                                               out capped boolean)
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
    if max_scan is null or max_scan < 1 or max_scan > 10000 then
        perform pgbatch._raise('PB007', format('invalid max_scan: %s, must be 1 to 10000',
                                               coalesce(max_scan::text, 'NULL')));
    end if;
    select m.latest, m.occurrences, m.capped into latest, occurrences, capped
      from pgbatch._cron_missed(v_spec, tz, after, until, max_scan) m;
end
$$;
