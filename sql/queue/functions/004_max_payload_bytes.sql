-- The largest payload accepted, in bytes of its stored (jsonb) form: 1 MiB.
create or replace function pgbatch.max_payload_bytes()
returns integer
language sql
immutable
parallel safe
as $$ select 1048576 $$;
