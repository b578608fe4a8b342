-- vacuum_stats: the tables whose dead row versions the maintenance leader
-- watches (today the live job table, pgbatch.job: every job leaves two dead
-- versions there, its claim and its settlement), with the dead row versions
-- the statistics count in each, and whether `role` may VACUUM it: a
-- superuser, a member of the table's owner, on PostgreSQL 17 and later a role
-- with the MAINTAIN privilege on it (pgbatch_worker is granted it there), and
-- before 17 a member of the database's owner. VACUUM is a utility command that
-- cannot run inside a function; the caller runs it. `role` defaults to the
-- caller's current role (a default is evaluated in the caller's context).
create or replace function pgbatch.vacuum_stats("role" name default current_user)
returns table (schema_name text, table_name text, dead_tuples bigint, may_vacuum boolean)
language plpgsql
stable
as $$
declare
    v_role  oid;
    v_super boolean;
    t       record;
    v_may   boolean;
begin
    select r.oid, r.rolsuper into v_role, v_super from pg_catalog.pg_roles r
     where r.rolname = vacuum_stats."role";
    if v_role is null then
        perform pgbatch._raise('PB007', format('invalid role: %s does not exist',
                                               coalesce(quote_ident(vacuum_stats."role"), 'NULL')));
    end if;
    for t in select c.oid, n.nspname, c.relname, c.relowner
               from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
              where c.oid in ('pgbatch.job'::regclass)
              order by n.nspname, c.relname
    loop
        v_may := v_super or pg_has_role(v_role, t.relowner, 'USAGE');
        if not v_may then
            if current_setting('server_version_num')::integer >= 170000 then
                -- the privilege name is unknown before 17: never parse it there
                execute 'select has_table_privilege($1, $2, ''MAINTAIN'')' into v_may using v_role, t.oid;
            else
                select pg_has_role(v_role, d.datdba, 'USAGE') into v_may
                  from pg_catalog.pg_database d where d.datname = current_database();
            end if;
        end if;
        schema_name := t.nspname;
        table_name := t.relname;
        select coalesce(s.n_dead_tup, 0) into dead_tuples
          from pg_catalog.pg_stat_user_tables s where s.relid = t.oid;
        dead_tuples := coalesce(dead_tuples, 0);
        may_vacuum := coalesce(v_may, false);
        return next;
    end loop;
end
$$;
