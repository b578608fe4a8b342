-- pgbatch._apply_privileges(): (re)applies least privilege; idempotent. Run by
-- the install and at the end of every migration that (re)creates functions
-- (sql/core/privileges/999_apply_privileges.sql), and by `pgbatch roles
-- --apply`. Only the owner (or a superuser) may run it. See docs/roles.md.
--
-- 1. Role names: pgbatch.meta rows role.producer / role.worker / role.admin
--    / role.viewer (default pgbatch_producer, ...). A session setting
--    pgbatch.role_prefix ('myapp_' gives myapp_producer, ...) rewrites them.
-- 2. The four NOLOGIN group roles are created when the running role may
--    (superuser or CREATEROLE); worker and admin are made members of
--    producer (the viewer is a member of none). What it may not do is
--    reported as a WARNING (a DBA runs the SQL that `pgbatch roles` prints,
--    then this again).
-- 3. Functions: PUBLIC and the four roles lose EXECUTE on every function of
--    schema pgbatch; each public function is set SECURITY DEFINER with a
--    pinned search_path (or SECURITY INVOKER for the table-free helpers that
--    pgbatch.function_access marks so) and granted to its role, and to the
--    viewer too where function_access.viewer says so (functions that change
--    nothing; each is a producer or admin function, so admin has them all).
--    A public function without a pgbatch.function_access row raises.
-- 4. Tables: no right for PUBLIC, producer or worker; admin and viewer may
--    SELECT every column except claim and settlement tokens.
--    pgbatch.alembic_version is readable by all four (workers check the
--    revision at start).
-- 5. VACUUM of the hot table: MAINTAIN on pgbatch.job for worker on
--    PostgreSQL 17+; on 15/16 per-table autovacuum settings instead.
create or replace function pgbatch._apply_privileges()
returns void
language plpgsql
set search_path = pg_catalog, pgbatch, pg_temp
as $$
declare
    v_prefix text := nullif(current_setting('pgbatch.role_prefix', true), '');
    v_kinds constant text[] := array['producer', 'worker', 'admin', 'viewer'];
    v_known_prefix text;
    v_names text[];
    v_present text[];
    v_may_create boolean;
    v_missing text[] := '{}';
    v_kind text;
    v_name text;
    v_member text;
    f record;
    t record;
    v_access pgbatch.function_access;
    v_cols text;
begin
    -- 1. names
    if v_prefix is not null then
        if v_prefix !~ '^[a-z_][a-z0-9_]{0,49}$' then
            raise exception 'invalid pgbatch.role_prefix %: lowercase letters, digits and underscores, at most 50', quote_literal(v_prefix)
                using errcode = '22023';
        end if;
        insert into pgbatch.meta (key, value)
        select 'role.' || k, v_prefix || k from unnest(v_kinds) k
        on conflict (key) do update set value = excluded.value;
    else
        -- a kind added later (viewer) takes the prefix the others were given
        select left(m.value, length(m.value) - length('producer')) into v_known_prefix
          from pgbatch.meta m where m.key = 'role.producer' and m.value like '%producer';
        insert into pgbatch.meta (key, value)
        select 'role.' || k, coalesce(v_known_prefix, 'pgbatch_') || k from unnest(v_kinds) k
        on conflict (key) do nothing;
    end if;
    select array_agg(m.value order by array_position(v_kinds, substr(m.key, 6)))
      into v_names
      from pgbatch.meta m where m.key = any (array['role.producer', 'role.worker', 'role.admin', 'role.viewer']);

    -- 2. roles and memberships
    select r.rolsuper or r.rolcreaterole into v_may_create from pg_roles r where r.rolname = current_user;
    foreach v_name in array v_names loop
        if not exists (select from pg_roles r where r.rolname = v_name) then
            if v_may_create then
                begin
                    execute format('create role %I nologin', v_name);
                exception when duplicate_object or unique_violation then
                    null;  -- created meanwhile by another database's migration
                end;
            else
                v_missing := v_missing || format('create role %I nologin;', v_name);
            end if;
        end if;
    end loop;
    foreach v_member in array v_names[2:3] loop
        if exists (select from pg_roles r where r.rolname = v_member)
           and exists (select from pg_roles r where r.rolname = v_names[1])
           and not exists (select from pg_auth_members a
                            where a.roleid = to_regrole(quote_ident(v_names[1]))
                              and a.member = to_regrole(quote_ident(v_member))) then
            -- PostgreSQL 15: CREATEROLE may grant any role; 16+: ADMIN OPTION needed
            if pg_has_role(v_names[1], 'MEMBER WITH ADMIN OPTION')
               or (v_may_create and current_setting('server_version_num')::integer < 160000) then
                execute format('grant %I to %I', v_names[1], v_member);
            else
                v_missing := v_missing || format('grant %I to %I;', v_names[1], v_member);
            end if;
        elsif not exists (select from pg_roles r where r.rolname = v_member)
              or not exists (select from pg_roles r where r.rolname = v_names[1]) then
            v_missing := v_missing || format('grant %I to %I;', v_names[1], v_member);
        end if;
    end loop;
    select array_agg(n) into v_present from unnest(v_names) n
     where exists (select from pg_roles r where r.rolname = n);
    v_present := coalesce(v_present, '{}');

    -- 3. functions
    execute 'alter default privileges in schema pgbatch revoke execute on routines from public';
    for f in
        select p.oid::regprocedure as sig, p.proname
          from pg_proc p
         where p.pronamespace = 'pgbatch'::regnamespace
         order by p.proname, p.oid
    loop
        execute format('revoke all on routine %s from public', f.sig);
        foreach v_name in array v_present loop
            execute format('revoke all on routine %s from %I', f.sig, v_name);
        end loop;
        continue when left(f.proname, 1) = '_';
        select * into v_access from pgbatch.function_access a where a.function_name = f.proname;
        if not found then
            raise exception 'public function pgbatch.% has no row in pgbatch.function_access', f.sig
                using errcode = '42501',
                      hint = 'say which role may execute it (producer, worker or admin; viewer = true for a read) in sql/<domain>/privileges/ and in the migration that creates it';
        end if;
        if v_access.security_definer then
            execute format('alter routine %s security definer set search_path = pg_catalog, pgbatch, pg_temp', f.sig);
        else
            execute format('alter routine %s security invoker reset search_path', f.sig);
        end if;
        v_name := v_names[array_position(v_kinds, v_access.granted_to)];
        if v_name = any (v_present) then
            execute format('grant execute on routine %s to %I', f.sig, v_name);
        end if;
        if v_access.viewer and v_names[4] = any (v_present) then
            execute format('grant execute on routine %s to %I', f.sig, v_names[4]);
        end if;
    end loop;

    -- 4. schema, tables, sequences
    execute 'revoke all on schema pgbatch from public';
    foreach v_name in array v_present loop
        execute format('grant usage on schema pgbatch to %I', v_name);
    end loop;
    for t in
        select c.oid::regclass as rel, c.relname, c.relkind
          from pg_class c
         where c.relnamespace = 'pgbatch'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
         order by c.relname
    loop
        execute format('revoke all on %s from public', t.rel);
        foreach v_name in array v_present loop
            execute format('revoke all on %s from %I', t.rel, v_name);
        end loop;
        continue when t.relkind = 'S';
        if t.relname = 'alembic_version' then
            foreach v_name in array v_present loop
                execute format('grant select on %s to %I', t.rel, v_name);
            end loop;
        else
            select string_agg(quote_ident(a.attname), ', ' order by a.attnum) into v_cols
              from pg_attribute a
             where a.attrelid = t.rel and a.attnum > 0 and not a.attisdropped
               and a.attname not like '%token%';
            foreach v_name in array v_names[3:4] loop
                if v_cols is not null and v_name = any (v_present) then
                    execute format('grant select (%s) on %s to %I', v_cols, t.rel, v_name);
                end if;
            end loop;
        end if;
    end loop;

    -- 5. VACUUM of the hot table
    if current_setting('server_version_num')::integer >= 170000 then
        if v_names[2] = any (v_present) then
            execute format('grant maintain on pgbatch.job to %I', v_names[2]);
        end if;
    else
        alter table pgbatch.job set (
            autovacuum_vacuum_scale_factor = 0.01,
            autovacuum_vacuum_threshold = 1000,
            autovacuum_vacuum_insert_scale_factor = 0.01,
            autovacuum_analyze_scale_factor = 0.02,
            autovacuum_vacuum_cost_delay = 0);
    end if;

    if cardinality(v_missing) > 0 then
        raise warning 'pgbatch: % may not create or grant the pgbatch roles; a DBA runs: %',
            current_user, array_to_string(v_missing, ' ')
            using hint = 'then run `pgbatch roles --apply` (or select pgbatch._apply_privileges()) as the schema owner';
    end if;
end
$$;
