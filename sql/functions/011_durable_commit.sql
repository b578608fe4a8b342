-- Restores the session's own synchronous_commit when _relax_commit() lowered
-- it earlier in this transaction, so a transaction that claims and then
-- settles still commits the settlement durably. Costs one setting read
-- otherwise.
create or replace function pgbatch._durable_commit()
returns void
language plpgsql
as $$
begin
    if current_setting('pgbatch.relaxed', true) = '1' then
        perform set_config('synchronous_commit', s.reset_val, true)
           from pg_catalog.pg_settings s
          where s.name = 'synchronous_commit';
        perform set_config('pgbatch.relaxed', '', true);
    end if;
end
$$;
