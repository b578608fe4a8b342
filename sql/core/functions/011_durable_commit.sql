-- Restores the synchronous_commit that was in effect before _relax_commit()
-- lowered it earlier in this transaction (the session's own value, or one
-- the caller SET LOCAL), so a transaction that claims and then settles still
-- commits the settlement durably. Costs one setting read otherwise.
create or replace function pgbatch._durable_commit()
returns void
language plpgsql
as $$
declare
    v_saved text := current_setting('pgbatch.relaxed', true);
begin
    if v_saved is not null and v_saved <> '' then
        perform set_config('synchronous_commit', v_saved, true);
        perform set_config('pgbatch.relaxed', '', true);
    end if;
end
$$;
