-- Whether pgbatch.now() honours the session setting pgbatch.fake_now.
-- Always false in a production install. Only a superuser (or the schema
-- owner) can replace it, which sql/testing/enable_test_clock.sql does for
-- test databases: an ordinary application role can never move the clock.
create or replace function pgbatch._test_clock_enabled()
returns boolean
language sql
immutable
parallel safe
as $$ select false $$;
