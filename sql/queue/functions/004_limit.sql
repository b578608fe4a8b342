-- One value of pgbatch.limits() as a number (immutable: a constant in every plan).
create or replace function pgbatch._limit(name text)
returns bigint
language sql
immutable
parallel safe
as $$ select (pgbatch.limits() ->> name)::bigint $$;
