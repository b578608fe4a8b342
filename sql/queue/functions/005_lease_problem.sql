-- What is wrong with a lease (claim, renew_lease), as {sqlstate, message}
-- (InvalidArgument, PB007), or NULL: a lease is limits() min_lease_seconds
-- to max_lease_seconds long.
create or replace function pgbatch._lease_problem(lease interval)
returns text[]
language sql
stable
parallel safe
as $$
    select case
        when lease is null or lease <= interval '0'
            then array['PB007', format('invalid lease: %s, must be positive', coalesce(lease::text, 'NULL'))]
        when lease < pgbatch._limit_interval('min_lease_seconds')
          or lease > pgbatch._limit_interval('max_lease_seconds')
            then array['PB007', format('invalid lease: %s, must be %s to %s',
                                       lease, justify_hours(pgbatch._limit_interval('min_lease_seconds')),
                                       justify_hours(pgbatch._limit_interval('max_lease_seconds')))]
    end
$$;
