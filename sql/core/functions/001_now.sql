-- pgbatch.now(): the one clock every time comparison uses (database time,
-- the transaction's start). In a test database (see _test_clock_enabled) a
-- session may move it with: set pgbatch.fake_now = '2026-01-01 00:00Z'.
create or replace function pgbatch.now()
returns timestamptz
language sql
stable
parallel safe
as $$
    select case
        when pgbatch._test_clock_enabled()
            then coalesce(nullif(current_setting('pgbatch.fake_now', true), '')::timestamptz,
                          pg_catalog.now())
        else pg_catalog.now()
    end
$$;
