-- What is wrong with a retry backoff (nack, backoff), as {sqlstate, message}
-- (InvalidArgument, PB007), or NULL: base and cap are given, not negative,
-- and at most limits() max_run_at_offset_seconds.
create or replace function pgbatch._backoff_problem(base interval, cap interval)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when base is null or cap is null
            then array['PB007', 'invalid backoff: backoff_base and backoff_cap must not be NULL']
        when base < interval '0' or cap < interval '0'
            then array['PB007', format('invalid backoff: base %s and cap %s must not be negative', base, cap)]
        when base > pgbatch._limit_interval('max_run_at_offset_seconds')
          or cap > pgbatch._limit_interval('max_run_at_offset_seconds')
            then array['PB007', format('invalid backoff: base %s and cap %s must be at most %s',
                                       base, cap, justify_hours(pgbatch._limit_interval('max_run_at_offset_seconds')))]
    end
$$;
