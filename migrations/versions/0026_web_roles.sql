-- pgbatch migration 0026_web_roles: a fourth group role, the viewer (the
-- read half of admin: every report, no action), and request_id for
-- requeue_dead_job so that a retried call repeats the first one's answer.
-- FROZEN: never edit this file after release; 0026_web_roles.py pins its sha256.

-- ==== core/schema/090_function_access.sql (delta): the viewer column ====
alter table pgbatch.function_access add column if not exists viewer boolean not null default false;
do $pgbatch_viewer$ begin
    if not exists (select from pg_catalog.pg_constraint
                    where conname = 'function_access_viewer_only_reads'
                      and conrelid = 'pgbatch.function_access'::regclass) then
        alter table pgbatch.function_access add constraint function_access_viewer_only_reads
            check (not viewer or granted_to in ('producer', 'admin'));
    end if;
end $pgbatch_viewer$;

-- ==== queue/schema/092_job_request.sql ====
-- Operator requests on jobs that carried a request_id (the web's
-- Idempotency-Key): requeue_dead_job records (job_id, request_id) in the
-- transaction that revives the job, so a retried call with the same
-- request_id for the same job returns the first call's answer and changes
-- nothing, even if the job died again since. A refused call records nothing.
-- sweep_retention deletes the records older than its dead_after (the age at
-- which dead records go too). kind names the call ('requeue_dead').
create table if not exists pgbatch.job_request (
    job_id       uuid        not null,
    request_id   uuid        not null,
    kind         text        not null,
    requested_at timestamptz not null,
    primary key (job_id, request_id, kind)
);
create index if not exists job_request_requested_at_idx on pgbatch.job_request (requested_at);

-- ==== core/functions/090_apply_privileges.sql ====
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

-- ==== queue/functions/060_requeue_dead_job.sql: request_id added (the old signature goes) ====
drop function if exists pgbatch.requeue_dead_job(uuid, timestamptz);
-- requeue_dead_job: revives a dead job as pending at `run_at` (default now)
-- with a fresh attempt count; returns its id. JobNotFound (PB003) when no
-- dead record exists (never created, or swept by retention); InvalidState
-- (PB004) when the job is not dead; DedupConflict (PB010) when a live job
-- already holds its dedup_key; DuplicateJobId (PB002) when a live job has its
-- id (a pair left by an older pgbatch, see _archive); InvalidTime (PB013)
-- for a run_at that is not finite or too far from now. Nothing changes
-- when it refuses.
-- `request_id` (optional) makes a retried call safe: the first call that
-- succeeds with it records (job_id, request_id) in pgbatch.job_request in
-- its own transaction; a later call with the same request_id for the same
-- job returns the job's id again and changes nothing, whatever the job's
-- state is now (pending, claimed, done, dead again, or swept), and its
-- run_at is ignored. A concurrent second call waits for the first one's
-- commit. A refused call records nothing, so its retry is tried afresh. A
-- different request_id (or none) behaves as a first call.
create or replace function pgbatch.requeue_dead_job(job_id uuid, run_at timestamptz default null,
    request_id uuid default null)
returns uuid
language plpgsql
as $$
declare
    a       pgbatch.job_archive;
    v_now   timestamptz := pgbatch.now();
    v_at    timestamptz := coalesce(requeue_dead_job.run_at, v_now);
    v_state text;
begin
    if requeue_dead_job.request_id is not null and requeue_dead_job.job_id is not null then
        insert into pgbatch.job_request (job_id, request_id, kind, requested_at)
        values (requeue_dead_job.job_id, requeue_dead_job.request_id, 'requeue_dead', v_now)
        on conflict do nothing;
        if not found then
            return requeue_dead_job.job_id;  -- a repeat of a call that succeeded
        end if;
    end if;
    perform pgbatch._check(pgbatch._time_problem('run_at', requeue_dead_job.run_at, v_now));
    if exists (select 1 from pgbatch.job j where j.id = requeue_dead_job.job_id)
       and exists (select 1 from pgbatch.job_archive x where x.id = requeue_dead_job.job_id and x.state = 'dead') then
        perform pgbatch._raise('PB002', format('duplicate job id %s: a live job has this id', job_id),
                               'settle or cancel the live job first');
    end if;
    delete from pgbatch.job_archive x
     where x.id = requeue_dead_job.job_id and x.state = 'dead'
    returning x.* into a;
    if not found then
        select x.state into v_state from pgbatch.job_archive x where x.id = requeue_dead_job.job_id;
        if v_state is null then
            select j.state into v_state from pgbatch.job j where j.id = requeue_dead_job.job_id;
        end if;
        if v_state is null then
            perform pgbatch._raise('PB003', format('job %s not found (no dead record: never dead, or swept by retention)', job_id));
        end if;
        perform pgbatch._raise('PB004', format('job %s is %s, not dead', job_id, v_state));
    end if;
    perform pgbatch._durable_commit();
    insert into pgbatch.job (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at, last_error)
    values (a.id, a.queue, a.payload, a.priority, v_at, a.max_attempts, a.dedup_key, a.created_at, a.last_error)
    on conflict (queue, dedup_key) where dedup_key is not null do nothing;
    if not found then
        perform pgbatch._raise('PB010', format('job %s cannot be requeued: a live job of queue %s holds dedup_key %s',
                                               job_id, a.queue, a.dedup_key));
    end if;
    insert into pgbatch.queue_count (queue, dead) values (a.queue, -1);
    if v_at <= v_now then
        perform pgbatch._announce(a.queue, 1);
    else
        perform pgbatch._announce(a.queue, 0, v_at);
    end if;
    return a.id;
end
$$;

-- ==== queue/functions/064_sweep_retention.sql: also sweeps pgbatch.job_request ====
-- sweep_retention: deletes up to `limit` archived records: done and
-- cancelled ones finished more than `done_after` ago, dead ones more than
-- `dead_after` ago. Returns the number deleted. Safe on many nodes at once.
-- Done and cancelled records are found along job_archive_listing_idx by their
-- creation time (a job is never settled before it was created, so every
-- record finished before the cutoff was created before it; under a clock
-- override that moves backwards, a record is swept once both times are past
-- the cutoff); dead ones along the partial job_archive_dead_idx. The archive
-- has no index for done records of its own: an ack writes one entry fewer.
-- A done sweep passes over the dead records created before its cutoff that
-- are not due yet (dead_after is longer), and over records created long ago
-- but settled recently (jobs scheduled far ahead).
-- It also deletes up to `limit` request records of requeue_dead_job
-- (pgbatch.job_request) older than `dead_after` (not counted in the result):
-- a retry with the same request_id is recognised as long as a dead record
-- would be kept.
-- Commits without waiting for the WAL flush. The ages are 0 to limits()
-- max_retention_seconds (InvalidArgument, PB007).
create or replace function pgbatch.sweep_retention(
    done_after interval default '1 day',
    dead_after interval default '7 days',
    "limit"    integer  default 10000
)
returns integer
language plpgsql
as $$
declare
    v_now timestamptz := pgbatch.now();
    v_n   integer;
begin
    if sweep_retention."limit" is null or sweep_retention."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    if done_after is null or dead_after is null or done_after < interval '0' or dead_after < interval '0' then
        perform pgbatch._raise('PB007', 'invalid retention: done_after and dead_after must be non-negative intervals');
    end if;
    if done_after > pgbatch._limit_interval('max_retention_seconds')
       or dead_after > pgbatch._limit_interval('max_retention_seconds') then
        perform pgbatch._raise('PB007', format('invalid retention: done_after and dead_after must be at most %s',
                                               justify_hours(pgbatch._limit_interval('max_retention_seconds'))));
    end if;
    perform pgbatch._relax_commit();
    with done_victims as (
        select a.id from pgbatch.job_archive a
         where a.created_at < v_now - done_after
           and a.state in ('done', 'cancelled') and a.finished_at < v_now - done_after
         limit sweep_retention."limit"
           for update skip locked
    ), dead_victims as (
        select a.id from pgbatch.job_archive a
         where a.state = 'dead' and a.finished_at < v_now - dead_after
         limit greatest(sweep_retention."limit" - (select count(*) from done_victims), 0)
           for update skip locked
    ), victims as (
        select id from done_victims union all select id from dead_victims
    ), gone as (
        delete from pgbatch.job_archive a using victims v where a.id = v.id
        returning a.queue, a.state
    ), counted as (
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        select g.queue,
               -count(*) filter (where g.state = 'done'),
               -count(*) filter (where g.state = 'dead'),
               -count(*) filter (where g.state = 'cancelled')
          from gone g group by g.queue
        returning 1
    )
    select count(*) into v_n from gone;
    delete from pgbatch.job_request r
     where (r.job_id, r.request_id, r.kind) in (
           select o.job_id, o.request_id, o.kind from pgbatch.job_request o
            where o.requested_at < v_now - dead_after
            limit sweep_retention."limit"
              for update skip locked);
    return v_n;
end
$$;

-- ==== function_access rows of the re-created functions ====
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('requeue_dead_job', 'admin',  true),
    ('sweep_retention',  'worker', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

-- ==== core/privileges/900_viewer_access.sql ====
-- What the viewer role (role.viewer, default pgbatch_viewer) may execute:
-- every function that changes nothing and that the read-only dashboard
-- (`pgbatch web --read-only`) or the CLI's read commands call: the reports
-- of jobs (payloads and errors included), queues, nodes, metrics, runs,
-- steps, events, approvals and schedules, and the pure helpers. Never an
-- action, a claim or a settlement; no function returns a claim token. Runs
-- after every domain's function_access rows, before 999_apply_privileges.
-- A new read-only report joins this list (and its migration sets the flag).
update pgbatch.function_access set viewer = true
 where function_name in (
    -- producer functions that only read (or compute)
    'backoff', 'canonical_params', 'channel_name', 'check_compat', 'cron_missed', 'cron_next',
    'cron_occurrences', 'cron_parse', 'cron_prev', 'job_key', 'kv_get', 'limits', 'list_tasks',
    'max_payload_bytes', 'now', 'queue_stats', 'uuid_v7',
    -- the admin reports
    'approvals', 'execution_events', 'get_execution', 'get_job', 'job_executions',
    'job_executions_page', 'list_jobs', 'metrics', 'paused_executions', 'schedule_fires',
    'schedules', 'step_executions', 'web_nodes');

select pgbatch._apply_privileges();

-- schedule_occurrences (0025_schedule_occurrences) only computes: the viewer
-- may run it (the read-only dashboard's schedule wizard preview).
update pgbatch.function_access set viewer = true where function_name = 'schedule_occurrences';
select pgbatch._apply_privileges();
