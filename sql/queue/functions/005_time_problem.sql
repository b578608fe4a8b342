-- What is wrong with a point in time given for `what` (run_at, retry_at), as
-- {sqlstate, message} (InvalidTime, PB013), or NULL when it is NULL (the
-- caller's default applies) or finite and at most limits()
-- max_run_at_offset_seconds before or after `now`.
create or replace function pgbatch._time_problem(what text, at timestamptz, now timestamptz)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when not isfinite(at)
            then array['PB013', format('invalid %s: %s, must be a finite time', what, at)]
        when at > now + pgbatch._limit_interval('max_run_at_offset_seconds')
          or at < now - pgbatch._limit_interval('max_run_at_offset_seconds')
            then array['PB013', format('invalid %s: %s is more than %s from now (%s)',
                                       what, at, justify_hours(pgbatch._limit_interval('max_run_at_offset_seconds')), now)]
    end
$$;
