-- The largest payload accepted, in bytes of its stored (jsonb) form: 1 MiB
-- (pgbatch.limits() ->> 'max_payload_bytes').
create or replace function pgbatch.max_payload_bytes()
returns integer
language sql
immutable
parallel safe
as $$ select (pgbatch.limits() ->> 'max_payload_bytes')::integer $$;
