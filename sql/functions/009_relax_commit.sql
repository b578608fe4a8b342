-- Claims, lease renewals, reaping, due-job announcements and retention
-- sweeps commit without waiting for the WAL flush: losing one in a crash only
-- leaves a job pending (or a record in place) and it is redone. The
-- transaction-local flag pgbatch.relaxed lets caller-driven settlements
-- restore durability (_durable_commit) when they share the transaction.
create or replace function pgbatch._relax_commit()
returns void
language sql
as $$
    select set_config('synchronous_commit', 'off', true), set_config('pgbatch.relaxed', '1', true)
$$;
