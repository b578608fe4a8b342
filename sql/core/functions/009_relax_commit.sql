-- Claims, lease renewals, reaping, due-job announcements and retention
-- sweeps commit without waiting for the WAL flush: losing one in a crash only
-- leaves a job pending (or a record in place) and it is redone. This only
-- applies while the transaction has written nothing else: when the caller
-- already wrote in it (its own rows, an enqueue, an ack, ...; i.e. a
-- transaction id is assigned), the claim must not make those writes commit
-- asynchronously, so nothing is relaxed. Call it before the function's own
-- writes. The transaction-local setting pgbatch.relaxed keeps the
-- synchronous_commit that was in effect, so a caller-driven settlement later
-- in the same transaction restores exactly it (_durable_commit). Writes the
-- caller makes after the claim in the same transaction commit relaxed too,
-- unless a settlement restores durability or the caller SETs LOCAL
-- synchronous_commit itself afterwards.
create or replace function pgbatch._relax_commit()
returns void
language plpgsql
as $$
begin
    if pg_current_xact_id_if_assigned() is null
       and coalesce(current_setting('pgbatch.relaxed', true), '') = '' then
        perform set_config('pgbatch.relaxed', current_setting('synchronous_commit'), true);
        perform set_config('synchronous_commit', 'off', true);
    end if;
end
$$;
