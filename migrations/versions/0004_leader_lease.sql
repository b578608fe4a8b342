-- pgbatch migration 0004_leader_lease: maintenance leadership by database time.
-- Adds the lease table pgbatch.leader and the functions that take, renew, give
-- up and check a lease (try_lead, resign_lead, holds_lead; _check_lead_args),
-- and vacuum_stats (the leader's VACUUM decision, formerly a query in Python).
-- Workers of the previous version keep leading by their session advisory lock
-- and ignore the table; a rolling deploy therefore may have one leader of each
-- kind for a while, which is harmless: every maintenance function is safe to
-- run on several nodes at once.
-- FROZEN: never edit this file after release.

set check_function_bodies = off;

-- ==== queue/schema/075_leader.sql ====
-- Leadership leases, judged by database time. One row per leadership scope
-- (the maintenance loop uses 'maintenance'). The holder, a node incarnation
-- (node_id, boot_id), leads while pgbatch.now() < lease_expires_at, and
-- renews the lease well before it runs out (try_lead()). A holder that stops
-- renewing -- dead, or alive but stuck (SIGSTOP, a hung event loop, a network
-- partition that keeps its session open) -- loses the lease when it expires,
-- and the next node that asks takes the row over. No session state is
-- involved (no advisory lock), so leadership works through a transaction
-- pooler and nothing stays behind on an idle pooled connection.
-- `term` grows by one each time the lease changes hands or lapses and is taken
-- again: work fenced by holds_lead() names the term it was started under.
create table if not exists pgbatch.leader (
    scope            text        primary key,
    node_id          text        not null,
    boot_id          uuid        not null,
    term             bigint      not null,
    acquired_at      timestamptz not null,
    renewed_at       timestamptz not null,
    lease_expires_at timestamptz not null
);

-- ==== queue/functions/090_check_lead_args.sql ====
-- Validates the arguments shared by try_lead, resign_lead and holds_lead:
-- node_id 1 to 200 characters (as register_node), a boot_id, and a scope of
-- 1 to 128 characters that is not only whitespace.
create or replace function pgbatch._check_lead_args(node_id text, boot_id uuid, scope text)
returns void
language plpgsql
as $$
begin
    if node_id is null or length(node_id) = 0 or length(node_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid node_id: must be 1 to 200 characters');
    end if;
    if boot_id is null then
        perform pgbatch._raise('PB007', 'invalid boot_id: must not be NULL');
    end if;
    if scope is null or length(scope) > 128 or scope !~ '[^[:space:]]' then
        perform pgbatch._raise('PB007', 'invalid scope: must be 1 to 128 characters, not only whitespace');
    end if;
end
$$;

-- ==== queue/functions/091_try_lead.sql ====
-- try_lead: asks for (or renews) the leadership lease of `scope` for the node
-- incarnation (node_id, boot_id), in one transaction.
--
-- * No row yet, or the current lease has run out (lease_expires_at <=
--   pgbatch.now()): this node takes it, for `lease` from now, with the next
--   term (also when the lapsed lease was its own: it did not lead in between).
-- * This node holds a valid lease: it is renewed to now + `lease` (never
--   shortened); the term stays.
-- * Another node holds a valid lease: nothing changes.
--
-- Returns one row: whether this node leads now (is_leader), the term, the
-- holder's node_id and when the holder's lease expires. A node that was stuck past its lease
-- learns at its next call that it lost it (is_leader = false, or a new term).
-- Two nodes never hold a valid lease at the same database instant: a takeover
-- starts no earlier than the previous lease ended. A node must treat itself as
-- leader only until its own clock says `lease` has passed since it SENT this
-- call (the transaction, and so the expiry, starts no earlier than that).
--
-- `lease`: 1 second to 1 hour. It bounds how long a stuck leader stalls the
-- leader-only work of everyone (reaping, announcements, ...). Commits durably:
-- a lease recorded here must survive a server crash while its holder acts.
create or replace function pgbatch.try_lead(
    node_id text,
    boot_id uuid,
    lease   interval default '5 seconds',
    scope   text     default 'maintenance'
)
returns table (is_leader boolean, term bigint, leader_node_id text, lease_expires_at timestamptz)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
    r     pgbatch.leader;
begin
    perform pgbatch._check_lead_args(try_lead.node_id, try_lead.boot_id, try_lead.scope);
    if try_lead.lease is null or not isfinite(try_lead.lease)
       or try_lead.lease < interval '1 second' or try_lead.lease > interval '1 hour' then
        perform pgbatch._raise('PB007', format('invalid lease: %s, must be 1 second to 1 hour',
                                               coalesce(try_lead.lease::text, 'NULL')));
    end if;
    -- the common case of a follower: a valid lease held by someone else (no lock, no write)
    select * into r from pgbatch.leader l where l.scope = try_lead.scope;
    if found and r.lease_expires_at > v_now
       and (r.node_id <> try_lead.node_id or r.boot_id <> try_lead.boot_id) then
        return query select false, r.term, r.node_id, r.lease_expires_at;
        return;
    end if;
    insert into pgbatch.leader as l (scope, node_id, boot_id, term, acquired_at, renewed_at, lease_expires_at)
    values (try_lead.scope, try_lead.node_id, try_lead.boot_id, 1, v_now, v_now, v_now + try_lead.lease)
    on conflict (scope) do nothing
    returning * into r;
    if found then
        return query select true, r.term, r.node_id, r.lease_expires_at;
        return;
    end if;
    select * into r from pgbatch.leader l where l.scope = try_lead.scope for update;
    if r.lease_expires_at > v_now then
        if r.node_id <> try_lead.node_id or r.boot_id <> try_lead.boot_id then
            return query select false, r.term, r.node_id, r.lease_expires_at;
            return;
        end if;
        update pgbatch.leader l
           set renewed_at = v_now,
               lease_expires_at = greatest(l.lease_expires_at, v_now + try_lead.lease)
         where l.scope = try_lead.scope
        returning * into r;
    else
        update pgbatch.leader l
           set node_id = try_lead.node_id, boot_id = try_lead.boot_id, term = l.term + 1,
               acquired_at = v_now, renewed_at = v_now, lease_expires_at = v_now + try_lead.lease
         where l.scope = try_lead.scope
        returning * into r;
    end if;
    return query select true, r.term, r.node_id, r.lease_expires_at;
end
$$;

-- ==== queue/functions/092_resign_lead.sql ====
-- resign_lead: gives up the leadership lease of `scope` if the node
-- incarnation (node_id, boot_id) holds it and it is still valid: the lease
-- ends now, so the next node that calls try_lead takes over at once instead of
-- waiting for it to run out (a worker calls this at a clean shutdown). Returns
-- whether a lease was given up.
create or replace function pgbatch.resign_lead(
    node_id text,
    boot_id uuid,
    scope   text default 'maintenance'
)
returns boolean
language plpgsql
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
begin
    perform pgbatch._check_lead_args(resign_lead.node_id, resign_lead.boot_id, resign_lead.scope);
    update pgbatch.leader l
       set lease_expires_at = v_now
     where l.scope = resign_lead.scope and l.node_id = resign_lead.node_id
       and l.boot_id = resign_lead.boot_id and l.lease_expires_at > v_now;
    return found;
end
$$;

-- ==== queue/functions/093_holds_lead.sql ====
-- holds_lead: whether the node incarnation (node_id, boot_id) holds a valid
-- leadership lease of `scope` under `term` at this transaction's start
-- (pgbatch.now()). Leader-only work that must not run twice calls it first, in
-- its own transaction, and does nothing when it returns false. It takes no
-- lock (a stuck holder must never block a takeover), so it fences the start
-- of the work, not its whole duration: such work must still be safe when a
-- takeover happens while it runs (row locks, SKIP LOCKED, idempotent writes).
create or replace function pgbatch.holds_lead(
    node_id text,
    boot_id uuid,
    term    bigint,
    scope   text default 'maintenance'
)
returns boolean
language plpgsql
stable
as $$
#variable_conflict use_column
begin
    perform pgbatch._check_lead_args(holds_lead.node_id, holds_lead.boot_id, holds_lead.scope);
    if holds_lead.term is null or holds_lead.term < 1 then
        perform pgbatch._raise('PB007', 'invalid term: must be at least 1');
    end if;
    return exists (
        select 1 from pgbatch.leader l
         where l.scope = holds_lead.scope and l.node_id = holds_lead.node_id
           and l.boot_id = holds_lead.boot_id and l.term = holds_lead.term
           and l.lease_expires_at > pgbatch.now());
end
$$;

-- ==== queue/functions/094_vacuum_stats.sql ====
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

reset check_function_bodies;

-- Who may execute the functions this version adds (docs/roles.md), then the
-- privileges step: SECURITY DEFINER, pinned search_path, grants.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('try_lead',     'worker', true),
    ('resign_lead',  'worker', true),
    ('holds_lead',   'worker', true),
    ('vacuum_stats', 'worker', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
select pgbatch._apply_privileges();
