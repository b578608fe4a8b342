-- check_compat: raises IncompatibleSchema (PB011) when this database was
-- migrated by a pgbatch whose schema has a breaking change that code written
-- for `supported` does not understand. Workers call it at start; returns the
-- database's level otherwise. `supported` must not be NULL (PB007).
create or replace function pgbatch.check_compat(supported integer)
returns integer
language plpgsql
stable
as $$
declare
    v_level integer;
begin
    if supported is null then
        perform pgbatch._raise('PB007', 'invalid supported level: must not be NULL');
    end if;
    select m.value::integer into v_level from pgbatch.meta m where m.key = 'schema_compat';
    if v_level > supported then
        perform pgbatch._raise('PB011',
            format('the database schema is at compatibility level %s; this pgbatch supports up to %s', v_level, supported),
            'upgrade pgbatch on this host before starting it against this database');
    end if;
    return v_level;
end
$$;
