-- pgbatch.now(): the one clock every time comparison uses (database time,
-- the transaction's start). A plain SQL function, so the planner inlines it
-- (it costs nothing over pg_catalog.now()). Test databases replace it
-- (sql/testing/enable_test_clock.sql) with a version that a superuser session
-- may move with: set pgbatch.fake_now = '2026-01-01 00:00Z'. A production
-- install cannot move it at all.
create or replace function pgbatch.now()
returns timestamptz
language sql
stable
parallel safe
as $$ select pg_catalog.now() $$;
