-- What is wrong with an instant `at` given as `what` to a cron function, as
-- {sqlstate, message} (InvalidTime, PB013), or NULL when it is finite and in
-- the range cron evaluation covers, [1900-01-01, 2200-01-01) UTC.
create or replace function pgbatch._cron_time_problem(what text, at timestamptz)
returns text[]
language sql
immutable
parallel safe
as $$
    select case
        when at is null
            then array['PB013', format('invalid %s: NULL, must be a time', what)]
        when not isfinite(at)
            then array['PB013', format('invalid %s: %s, must be a finite time', what, at)]
        when at < timestamptz '1900-01-01 00:00Z' or at >= timestamptz '2200-01-01 00:00Z'
            then array['PB013', format('invalid %s: %s is outside the range of cron evaluation,'
                                       ' 1900-01-01 to 2200-01-01 UTC', what, at)]
    end
$$;
