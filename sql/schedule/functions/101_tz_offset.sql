-- The UTC offset of time zone `tz` at instant `at` (local wall clock minus UTC).
create or replace function pgbatch._tz_offset(tz text, at timestamptz)
returns interval
language sql
immutable
parallel safe
as $$ select (at at time zone tz) - (at at time zone 'UTC') $$;
