-- Test databases only (run as a superuser or the schema owner): lets
-- pgbatch.now() honour the session setting pgbatch.fake_now, in superuser
-- sessions only. Any role may set a custom setting such as pgbatch.fake_now,
-- so the superuser check is what keeps an application role (and the pgbatch
-- group roles) from moving the clock. is_superuser is the session's (after
-- SET ROLE, that role's), not the owner's inside a SECURITY DEFINER function;
-- it is read only when pgbatch.fake_now is set. Still inlinable.
create or replace function pgbatch.now()
returns timestamptz
language sql
stable
parallel safe
as $$
    select case
        when pg_catalog.current_setting('pgbatch.fake_now', true) <> ''
             and pg_catalog.current_setting('is_superuser') = 'on'
            then pg_catalog.current_setting('pgbatch.fake_now')::timestamptz
        else pg_catalog.now()
    end
$$;
