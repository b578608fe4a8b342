-- A duration of pgbatch.limits() (given there in seconds) as an interval.
create or replace function pgbatch._limit_interval(name text)
returns interval
language sql
immutable
parallel safe
as $$ select make_interval(secs => pgbatch._limit(name)) $$;
