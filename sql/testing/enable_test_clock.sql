-- Test databases only (run as a superuser or the schema owner): lets
-- pgbatch.now() honour the session setting pgbatch.fake_now.
create or replace function pgbatch._test_clock_enabled()
returns boolean
language sql
immutable
parallel safe
as $$ select true $$;
