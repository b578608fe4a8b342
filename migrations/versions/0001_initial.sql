-- pgbatch migration 0001_initial: the initial schema (schema pgbatch, its tables,
-- types and every function), generated once from sql/schema/*.sql + sql/functions/*.sql
-- (pgbatch._install.schema_sql()).
-- FROZEN: never edit this file after release. Schema changes go into a new
-- version (0002_....sql) that holds only the change; 0001_initial.py pins this
-- file's sha256 and refuses to apply an edited copy.

set check_function_bodies = off;

-- ==== schema/010_schema.sql ====
-- Schema pgbatch: tables are private; the SQL API is the functions in sql/functions/.
create schema if not exists pgbatch;

-- Schema metadata: the breaking-change level of this schema. Code that
-- supports a lower level refuses to start against it (see pgbatch/_install.py).
create table pgbatch.meta (
    key   text primary key,
    value text not null
);
insert into pgbatch.meta (key, value) values ('schema_compat', '1');

-- ==== schema/020_queue.sql ====
-- One row per queue that was ever used, paused or configured.
-- Claims read `paused` (a primary-key lookup), enqueues read `notify`.
-- `announced_until` is the due-job announcement watermark (announce_due()).
create table pgbatch.queue (
    name            text primary key,
    paused          boolean     not null default false,
    notify          boolean     not null default true,
    announced_until timestamptz not null default now(),
    created_at      timestamptz not null default now()
);

-- ==== schema/030_job.sql ====
-- Live jobs only: pending and claimed. A job that is settled for good (done,
-- dead, cancelled) is moved to pgbatch.job_archive in the same transaction, so
-- this table and its indexes stay as small as the live backlog: claim cost does
-- not grow with the number of finished jobs kept for retention.
create table pgbatch.job (
    id               uuid        primary key,
    seq              bigint      generated always as identity,  -- enqueue order tie-breaker
    queue            text        not null,
    payload          jsonb       not null,
    priority         integer     not null default 0,
    run_at           timestamptz not null,
    state            text        not null default 'pending'
                                 check (state in ('pending', 'claimed')),
    attempt          integer     not null default 0,
    max_attempts     integer     not null,
    dedup_key        text,
    created_at       timestamptz not null,
    claim_token      uuid,
    claimed_by       text,
    claimed_at       timestamptz,
    lease_expires_at timestamptz,
    cancel_requested boolean     not null default false,
    last_error       jsonb,
    -- idempotent settlement: the token of the last settlement that left the
    -- job live (nack), and that call's result
    settled_token    uuid,
    settled_result   jsonb,
    check ((state = 'claimed') = (claim_token is not null))
) with (fillfactor = 80, vacuum_truncate = false);
-- vacuum_truncate = false: the table's size follows the backlog, and giving
-- its empty tail back to the OS takes an exclusive lock that claims and acks
-- would queue behind (autovacuum waits up to 5 s for it); the space is reused.

-- The claim path: due pending jobs of one queue in claim order.
create index job_claim_idx on pgbatch.job (queue, priority desc, run_at, seq)
    where state = 'pending';
-- The reaper: claims by lease expiry.
create index job_lease_idx on pgbatch.job (lease_expires_at)
    where state = 'claimed';
-- Deduplication among live jobs: a unique index, because only live jobs live here.
create unique index job_dedup_idx on pgbatch.job (queue, dedup_key)
    where dedup_key is not null;
-- (The node registry's fast path, register_node, finds a node's claims through
-- job_lease_idx: claimed rows are few, and every extra index on this table is
-- one more write per claim.)

-- ==== schema/040_job_archive.sql ====
-- Settled jobs kept for inspection, idempotent settlement retries and
-- requeue_dead_job, until sweep_retention() removes them.
create table pgbatch.job_archive (
    id             uuid        primary key,
    queue          text        not null,
    payload        jsonb       not null,
    priority       integer     not null,
    run_at         timestamptz not null,
    state          text        not null check (state in ('done', 'dead', 'cancelled')),
    attempt        integer     not null,
    max_attempts   integer     not null,
    dedup_key      text,
    created_at     timestamptz not null,
    finished_at    timestamptz not null,
    claim_token    uuid,          -- the claim that settled it (null when cancelled while pending)
    claimed_by     text,
    last_error     jsonb,
    result         jsonb          -- what the settling call returned (ack: follow-up ids)
);
-- Retention sweeps. Admin listings read the archive newest-first by primary
-- key with a filter; no other index, so an ack writes as few index entries
-- as possible.
create index job_archive_retention_idx on pgbatch.job_archive (state, finished_at);

-- ==== schema/050_queue_count.sql ====
-- Counters of archived jobs per queue as append-only deltas: settling jobs of
-- one queue concurrently never contends on a shared counter row. The
-- maintenance loop folds the deltas (compact_counters()); queue_stats() sums them.
create table pgbatch.queue_count (
    id        bigint generated always as identity primary key,
    queue     text    not null,
    done      bigint  not null default 0,
    dead      bigint  not null default 0,
    cancelled bigint  not null default 0
);
create index queue_count_queue_idx on pgbatch.queue_count (queue);

-- ==== schema/060_kv.sql ====
-- Key/value store written by ack effects (kv_put / kv_delete), read with kv_get().
create table pgbatch.kv (
    key        text        primary key,
    value      jsonb       not null,
    updated_at timestamptz not null default now()
);

-- ==== schema/070_node.sql ====
-- Worker node registry. A node that restarts with the same node_id and a new
-- boot_id releases the claims of its previous incarnation at once
-- (register_node()), instead of waiting for their leases to expire.
create table pgbatch.node (
    node_id      text        primary key,
    boot_id      uuid        not null,
    started_at   timestamptz not null,
    heartbeat_at timestamptz not null,
    info         jsonb       not null default '{}'
);

-- ==== schema/080_types.sql ====
-- Row type returned by claim(): one claimed job.
create type pgbatch.claimed_job as (
    id               uuid,
    queue            text,
    payload          jsonb,
    priority         integer,
    attempt          integer,
    max_attempts     integer,
    run_at           timestamptz,
    claim_token      uuid,
    lease_expires_at timestamptz,
    created_at       timestamptz,
    dedup_key        text,
    last_error       jsonb
);

-- Row type returned by ack_many(): the outcome of one entry.
create type pgbatch.ack_outcome as (
    job_id      uuid,
    status      text,      -- 'acked' | 'claim_lost' | 'not_found' | 'error'
    error_code  text,      -- SQLSTATE when not acked
    message     text,
    follow_ups  uuid[]
);

-- Row type returned by queue_stats().
create type pgbatch.queue_stat as (
    queue              text,
    pending            bigint,    -- claimable now
    scheduled          bigint,    -- pending with run_at in the future
    claimed            bigint,
    done               bigint,    -- archived records not yet swept
    dead               bigint,
    cancelled          bigint,
    oldest_pending_age interval,  -- how long the oldest claimable job has waited
    paused             boolean
);

-- ==== functions/000_test_clock_enabled.sql ====
-- Whether pgbatch.now() honours the session setting pgbatch.fake_now.
-- Always false in a production install. Only a superuser (or the schema
-- owner) can replace it, which sql/testing/enable_test_clock.sql does for
-- test databases: an ordinary application role can never move the clock.
create or replace function pgbatch._test_clock_enabled()
returns boolean
language sql
immutable
parallel safe
as $$ select false $$;

-- ==== functions/001_now.sql ====
-- pgbatch.now(): the one clock every time comparison uses (database time,
-- the transaction's start). In a test database (see _test_clock_enabled) a
-- session may move it with: set pgbatch.fake_now = '2026-01-01 00:00Z'.
create or replace function pgbatch.now()
returns timestamptz
language sql
stable
parallel safe
as $$
    select case
        when pgbatch._test_clock_enabled()
            then coalesce(nullif(current_setting('pgbatch.fake_now', true), '')::timestamptz,
                          pg_catalog.now())
        else pg_catalog.now()
    end
$$;

-- ==== functions/002_uuid_v7.sql ====
-- A time-ordered UUID (RFC 9562 version 7): 48 bits of Unix milliseconds,
-- then random bits. Job ids sort roughly by creation time.
create or replace function pgbatch.uuid_v7()
returns uuid
language sql
volatile
parallel safe
as $$
    select encode(
        set_bit(
            set_bit(
                overlay(uuid_send(gen_random_uuid())
                        placing substring(int8send(floor(extract(epoch from clock_timestamp()) * 1000)::bigint) from 3)
                        from 1 for 6),
                52, 1),
            53, 1),
        'hex')::uuid
$$;

-- ==== functions/003_raise.sql ====
-- Raises a pgbatch error with its own SQLSTATE (class PB). The codes, names,
-- and Python classes are listed once, in pgbatch/_errors.py.
create or replace function pgbatch._raise(code text, message text, detail text default null)
returns void
language plpgsql
as $$
begin
    if detail is null then
        raise exception using errcode = code, message = message;
    end if;
    raise exception using errcode = code, message = message, detail = detail;
end
$$;

-- ==== functions/004_max_payload_bytes.sql ====
-- The largest payload accepted, in bytes of its stored (jsonb) form: 1 MiB.
create or replace function pgbatch.max_payload_bytes()
returns integer
language sql
immutable
parallel safe
as $$ select 1048576 $$;

-- ==== functions/005_check_queue.sql ====
-- Validates a queue name: non-empty text of at most 128 characters (PB005).
create or replace function pgbatch._check_queue(queue text)
returns void
language plpgsql
as $$
begin
    if queue is null or length(queue) = 0 then
        perform pgbatch._raise('PB005', 'invalid queue name: must be non-empty text');
    elsif length(queue) > 128 then
        perform pgbatch._raise('PB005', format('invalid queue name: %s characters, at most 128 allowed', length(queue)));
    end if;
end
$$;

-- ==== functions/006_check_job_args.sql ====
-- Validates the arguments of one enqueue request.
create or replace function pgbatch._check_job_args(queue text, payload jsonb, max_attempts integer)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check_queue(queue);
    if payload is null then
        perform pgbatch._raise('PB006', 'invalid payload: must be a JSON value, not NULL');
    elsif pg_column_size(payload) > pgbatch.max_payload_bytes() then
        perform pgbatch._raise('PB006', format('payload too large: %s bytes, at most %s allowed',
                                               pg_column_size(payload), pgbatch.max_payload_bytes()));
    end if;
    if max_attempts is null or max_attempts < 1 then
        perform pgbatch._raise('PB007', format('invalid max_attempts: %s, must be at least 1', coalesce(max_attempts::text, 'NULL')));
    end if;
end
$$;

-- ==== functions/007_channel_name.sql ====
-- The NOTIFY channel of a queue: 'pgbatch_' + a readable prefix of the name
-- (lowercase letters, digits, underscores) + '_' + 128 bits of its SHA-256.
-- At most 63 bytes for any queue name, lowercase, so LISTEN needs no quoting
-- rules beyond an identifier; two different names never share a channel.
create or replace function pgbatch.channel_name(queue text)
returns text
language sql
immutable
strict
parallel safe
as $$
    select 'pgbatch_'
        || left(regexp_replace(lower(queue), '[^a-z0-9_]', '', 'g'), 22)
        || '_'
        || left(encode(sha256(convert_to(queue, 'UTF8')), 'hex'), 32)
$$;

-- ==== functions/008_announce.sql ====
-- Wakes listeners of a queue: `ready` jobs are claimable now (payload: the
-- count), and/or the earliest job becomes due at `due_at` (payload:
-- '@' + Unix milliseconds), so a listener can arm a timer instead of polling.
-- Does nothing when the queue's notifications are switched off
-- (set_queue_notify). Also creates the queue's row on first use.
-- NOTIFY folds identical payloads on one channel inside one transaction, so
-- the n-th announcement on the same channel in a transaction (n > 1) carries
-- a '/n' suffix to stay distinct; the first one on each channel has none (a
-- transaction that announces queues b then a still sends a plain '100' to a).
-- The per-channel counts live in the transaction-local setting
-- pgbatch.notify_seqs (a JSON object: channel -> count).
create or replace function pgbatch._announce(queue text, ready bigint, due_at timestamptz default null)
returns void
language plpgsql
as $$
declare
    v_notify boolean;
    v_channel text;
    v_seqs jsonb;
    v_seq integer;
    v_suffix text := '';
begin
    select q.notify into v_notify from pgbatch.queue q where q.name = _announce.queue;
    if not found then
        insert into pgbatch.queue (name) values (_announce.queue) on conflict do nothing;
        v_notify := true;
    end if;
    if not v_notify or (coalesce(ready, 0) <= 0 and due_at is null) then
        return;
    end if;
    v_channel := pgbatch.channel_name(_announce.queue);
    v_seqs := coalesce(nullif(current_setting('pgbatch.notify_seqs', true), '')::jsonb, '{}');
    v_seq := coalesce((v_seqs ->> v_channel)::integer, 0) + 1;
    perform set_config('pgbatch.notify_seqs', jsonb_set(v_seqs, array[v_channel], to_jsonb(v_seq))::text, true);
    if v_seq > 1 then
        v_suffix := '/' || v_seq;
    end if;
    if ready > 0 then
        perform pg_notify(v_channel, ready::text || v_suffix);
    end if;
    if due_at is not null then
        perform pg_notify(v_channel, '@' || floor(extract(epoch from due_at) * 1000)::bigint::text || v_suffix);
    end if;
end
$$;

-- ==== functions/009_relax_commit.sql ====
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

-- ==== functions/010_backoff.sql ====
-- Retry delay after `attempt` failed attempts: exponential (base * 2^(attempt-1)),
-- capped at `cap`, with "equal jitter": uniformly in [d/2, d]. Never above cap.
create or replace function pgbatch.backoff(attempt integer, base interval default '1 second',
                                           cap interval default '1 hour')
returns interval
language sql
volatile
parallel safe
as $$
    select d / 2 + d / 2 * random()
      from (select least(cap, base * power(2, least(greatest(attempt, 1) - 1, 40))::double precision) as d) x
$$;

-- ==== functions/011_durable_commit.sql ====
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

-- ==== functions/020_archive.sql ====
-- Moves a job that has left the live table (the caller deleted it) into the
-- archive as done, dead or cancelled, and counts it for queue_stats().
create or replace function pgbatch._archive(r pgbatch.job, state text, token uuid, result jsonb,
                                            last_error jsonb default null)
returns void
language plpgsql
as $$
begin
    insert into pgbatch.job_archive
        (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
         created_at, finished_at, claim_token, claimed_by, last_error, result)
    values
        (r.id, r.queue, r.payload, r.priority, r.run_at, _archive.state, r.attempt, r.max_attempts,
         r.dedup_key, r.created_at, pgbatch.now(), token, r.claimed_by,
         coalesce(last_error, r.last_error), result);
    insert into pgbatch.queue_count (queue, done, dead, cancelled)
    values (r.queue,
            (_archive.state = 'done')::integer,
            (_archive.state = 'dead')::integer,
            (_archive.state = 'cancelled')::integer);
end
$$;

-- ==== functions/030_enqueue.sql ====
-- enqueue: inserts one job and returns its id.
--   queue         any non-empty text up to 128 characters
--   payload       any JSON value (at most max_payload_bytes())
--   run_at        not claimable before this time (default: now)
--   priority      higher runs first
--   dedup_key     while a live (pending or claimed) job of this queue has the
--                 same key, returns that job's id and inserts nothing
--   max_attempts  claims allowed before the job is dead-lettered (>= 1)
--   id_override   the job's id; an id already used raises DuplicateJobId (PB002)
-- A job that is claimable now is announced on the queue's channel; a job due
-- later sends a due-time hint (see _announce).
create or replace function pgbatch.enqueue(
    queue        text,
    payload      jsonb       default '{}',
    run_at       timestamptz default null,
    priority     integer     default 0,
    dedup_key    text        default null,
    max_attempts integer     default 20,
    id_override  uuid        default null
)
returns uuid
language plpgsql
as $$
#variable_conflict use_column
declare
    v_now    timestamptz := pgbatch.now();
    v_run_at timestamptz := coalesce(enqueue.run_at, v_now);
    v_id     uuid;
begin
    perform pgbatch._check_job_args(enqueue.queue, enqueue.payload, enqueue.max_attempts);
    perform pgbatch._durable_commit();
    if enqueue.id_override is not null then
        if exists (select 1 from pgbatch.job_archive a where a.id = enqueue.id_override) then
            perform pgbatch._raise('PB002', format('duplicate job id %s', enqueue.id_override));
        end if;
        begin
            insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
            values (enqueue.id_override, enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0), v_run_at,
                    enqueue.max_attempts, enqueue.dedup_key, v_now)
            on conflict (queue, dedup_key) where dedup_key is not null do nothing
            returning j.id into v_id;
        exception when unique_violation then
            perform pgbatch._raise('PB002', format('duplicate job id %s', enqueue.id_override));
        end;
    else
        insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
        values (pgbatch.uuid_v7(), enqueue.queue, enqueue.payload, coalesce(enqueue.priority, 0), v_run_at,
                enqueue.max_attempts, enqueue.dedup_key, v_now)
        on conflict (queue, dedup_key) where dedup_key is not null do nothing
        returning j.id into v_id;
    end if;

    if v_id is null then
        -- a live duplicate exists: return its id
        select j.id into v_id from pgbatch.job j where j.queue = enqueue.queue and j.dedup_key = enqueue.dedup_key;
        if v_id is null then
            -- it was settled between our insert and this read: try again
            return pgbatch.enqueue(enqueue.queue, enqueue.payload, enqueue.run_at, enqueue.priority,
                                      enqueue.dedup_key, enqueue.max_attempts, enqueue.id_override);
        end if;
        return v_id;
    end if;

    if v_run_at <= v_now then
        perform pgbatch._announce(enqueue.queue, 1);
    else
        perform pgbatch._announce(enqueue.queue, 0, v_run_at);
    end if;
    return v_id;
end
$$;

-- ==== functions/031_enqueue_requests.sql ====
-- Inserts a JSON array of enqueue requests in one statement and returns the
-- ids in request order. Used by enqueue_many() and by ack effects. A request
-- is an object with "queue" (required) and optional "payload", "run_at",
-- "priority", "dedup_key", "max_attempts", "id"; any other key is an error.
-- Dedup applies against live jobs and inside the array (a later request with
-- the same queue and dedup_key gets the earlier one's id). Announces the
-- ready count (and earliest due time) once per queue.
create or replace function pgbatch._enqueue_requests(requests jsonb)
returns uuid[]
language plpgsql
as $$
declare
    v_now          timestamptz := pgbatch.now();
    v_problem      text;
    v_id           uuid[];
    v_leader       uuid[];
    v_queue        text[];
    v_payload      jsonb[];
    v_priority     integer[];
    v_run_at       timestamptz[];
    v_max_attempts integer[];
    v_dedup        text[];
    v_explicit     boolean;
    v_dup          uuid;
    v_count        bigint;
    v_result       uuid[];
begin
    if requests is null or jsonb_typeof(requests) <> 'array' then
        perform pgbatch._raise('PB007', 'enqueue requests must be a JSON array of objects');
    end if;
    if jsonb_array_length(requests) = 0 then
        return '{}';
    end if;

    -- shape: objects, known keys, right JSON types
    select format('request %s: %s', ord - 1, problem) into v_problem
      from (
        select ord,
               case
                 when jsonb_typeof(req) <> 'object' then 'must be a JSON object'
                 when req - array['queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'] <> '{}'::jsonb
                   then 'unknown key(s): ' || (select string_agg(k, ', ') from jsonb_object_keys(req) k
                                                where k not in ('queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'))
                 when jsonb_typeof(req -> 'queue') is distinct from 'string' then 'queue must be a string'
                 when length(req ->> 'queue') = 0 or length(req ->> 'queue') > 128
                   then format('invalid queue name: must be 1 to 128 characters, got %s', length(req ->> 'queue'))
                 when req ? 'run_at' and jsonb_typeof(req -> 'run_at') not in ('string', 'null') then 'run_at must be a timestamp string'
                 when req ? 'priority' and jsonb_typeof(req -> 'priority') not in ('number', 'null') then 'priority must be an integer'
                 when req ? 'max_attempts' and jsonb_typeof(req -> 'max_attempts') not in ('number', 'null') then 'max_attempts must be an integer'
                 when req ? 'max_attempts' and (req ->> 'max_attempts')::numeric < 1 then 'max_attempts must be at least 1'
                 when req ? 'dedup_key' and jsonb_typeof(req -> 'dedup_key') not in ('string', 'null') then 'dedup_key must be a string'
                 when req ? 'id' and jsonb_typeof(req -> 'id') not in ('string', 'null') then 'id must be a UUID string'
                 when req ? 'payload' and pg_column_size(req -> 'payload') > pgbatch.max_payload_bytes()
                   then format('payload too large: %s bytes, at most %s allowed', pg_column_size(req -> 'payload'), pgbatch.max_payload_bytes())
               end as problem
          from jsonb_array_elements(requests) with ordinality as e(req, ord)
      ) checks
     where problem is not null
     order by ord
     limit 1;
    if v_problem is not null then
        if v_problem like '%invalid queue name%' or v_problem like '%queue must be%' then
            perform pgbatch._raise('PB005', v_problem);
        elsif v_problem like '%payload too large%' then
            perform pgbatch._raise('PB006', v_problem);
        end if;
        perform pgbatch._raise('PB007', 'invalid enqueue ' || v_problem);
    end if;

    begin
        select array_agg(x.id order by x.ord),
               array_agg(case when x.dedup_key is null then x.id
                              else x.first_id end order by x.ord),
               array_agg(x.queue order by x.ord),
               array_agg(x.payload order by x.ord),
               array_agg(x.priority order by x.ord),
               array_agg(x.run_at order by x.ord),
               array_agg(x.max_attempts order by x.ord),
               array_agg(x.dedup_key order by x.ord),
               bool_or(x.explicit_id)
          into v_id, v_leader, v_queue, v_payload, v_priority, v_run_at, v_max_attempts, v_dedup, v_explicit
          from (
            select y.*, first_value(y.id) over (partition by y.queue, y.dedup_key order by y.ord) as first_id
              from (
                select e.ord,
                       coalesce((e.req ->> 'id')::uuid, pgbatch.uuid_v7()) as id,
                       e.req ->> 'queue' as queue,
                       coalesce(e.req -> 'payload', '{}'::jsonb) as payload,
                       coalesce((e.req ->> 'priority')::integer, 0) as priority,
                       coalesce((e.req ->> 'run_at')::timestamptz, v_now) as run_at,
                       coalesce((e.req ->> 'max_attempts')::integer, 20) as max_attempts,
                       e.req ->> 'dedup_key' as dedup_key,
                       (e.req ->> 'id') is not null as explicit_id
                  from jsonb_array_elements(requests) with ordinality as e(req, ord)
              ) y
          ) x;
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid enqueue request: ' || sqlerrm);
    end;

    if v_explicit then
        select u.id into v_dup
          from unnest(v_id) as u(id)
         where exists (select 1 from pgbatch.job j where j.id = u.id)
            or exists (select 1 from pgbatch.job_archive a where a.id = u.id)
         limit 1;
        if v_dup is null then
            select u.id into v_dup from unnest(v_id) as u(id) group by u.id having count(*) > 1 limit 1;
        end if;
        if v_dup is not null then
            perform pgbatch._raise('PB002', format('duplicate job id %s', v_dup));
        end if;
    end if;

    -- leaders are inserted; a leader that meets a live duplicate is left out
    with ins as (
        insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
        select u.id, u.queue, u.payload, u.priority, u.run_at, u.max_attempts, u.dedup_key, v_now
          from unnest(v_id, v_leader, v_queue, v_payload, v_priority, v_run_at, v_max_attempts, v_dedup)
               with ordinality as u(id, leader, queue, payload, priority, run_at, max_attempts, dedup_key, ord)
         where u.id = u.leader
         order by u.ord
        on conflict (queue, dedup_key) where dedup_key is not null do nothing
        returning j.queue, j.run_at
    )
    select count(pgbatch._announce(p.queue, p.ready, p.due_at)) into v_count
      from (select ins.queue,
                   count(*) filter (where ins.run_at <= v_now) as ready,
                   min(ins.run_at) filter (where ins.run_at > v_now) as due_at
              from ins group by ins.queue) p;

    -- a request with a dedup_key takes the id of the live job holding that
    -- key: the one just inserted, or the duplicate that was already there
    select array_agg(case when u.dedup_key is null then u.leader
                          else (select j.id from pgbatch.job j
                                 where j.queue = u.queue and j.dedup_key = u.dedup_key) end
                     order by u.ord)
      into v_result
      from unnest(v_leader, v_queue, v_dedup) with ordinality as u(leader, queue, dedup_key, ord);

    if array_position(v_result, null) is not null then
        -- the live duplicate was settled while we ran: enqueue those one by one
        for i in 1 .. array_length(v_result, 1) loop
            if v_result[i] is null then
                v_result[i] := pgbatch.enqueue(v_queue[i], v_payload[i], v_run_at[i], v_priority[i],
                                               v_dedup[i], v_max_attempts[i]);
            end if;
        end loop;
    end if;
    return v_result;
end
$$;

-- ==== functions/032_enqueue_many.sql ====
-- enqueue_many: the bulk form of enqueue(). `requests` is a JSON array of
-- objects with "queue" and optional "payload", "run_at", "priority",
-- "dedup_key", "max_attempts", "id" (the same shape as ack effects'
-- "enqueue"). Returns the ids in request order; one NOTIFY per queue.
create or replace function pgbatch.enqueue_many(requests jsonb)
returns uuid[]
language plpgsql
as $$
begin
    perform pgbatch._durable_commit();
    return pgbatch._enqueue_requests(requests);
end
$$;

-- ==== functions/040_claim.sql ====
-- claim: claims up to max_jobs due jobs of one queue in one statement
-- (FOR UPDATE SKIP LOCKED: claimers never wait on each other's rows). All
-- share one lease and one transaction; each gets a fresh random claim_token,
-- the fence every settlement checks. Returns them in claim order: priority
-- descending, then run_at, then enqueue order. A paused queue yields nothing.
-- worker_id is recorded as claimed_by (the node registry releases a restarted
-- node's claims by it). Commits without waiting for the WAL flush, unless
-- the caller's transaction already wrote something (see _relax_commit).
-- The picked rows are updated through job_pkey (`id = any(...)`, seq scans
-- off), never through a join with the live table: its statistics swing
-- between empty and full, and a join planned while it looked empty would
-- walk the whole table for every claimed job.
-- Keep claim transactions short: a claim that meets a row another claimer
-- took while it ran keeps a lock on that row (READ COMMITTED re-check) until
-- its transaction ends, and an ack of that job waits for it meanwhile.
create or replace function pgbatch.claim(
    queue     text,
    max_jobs  integer  default 1,
    lease     interval default '30 seconds',
    worker_id text     default null
)
returns setof pgbatch.claimed_job
language plpgsql
set enable_seqscan = off
as $$
#variable_conflict use_column
declare
    v_now timestamptz := pgbatch.now();
begin
    perform pgbatch._check_queue(claim.queue);
    if claim.max_jobs is null or claim.max_jobs < 1 then
        perform pgbatch._raise('PB007', format('invalid max_jobs: %s, must be at least 1', coalesce(claim.max_jobs::text, 'NULL')));
    end if;
    if claim.lease is null or claim.lease <= interval '0' then
        perform pgbatch._raise('PB007', format('invalid lease: %s, must be positive', coalesce(claim.lease::text, 'NULL')));
    end if;
    if exists (select 1 from pgbatch.queue q where q.name = claim.queue and q.paused) then
        return;
    end if;
    perform pgbatch._relax_commit();
    return query
    with picked as (
        select j.id
          from pgbatch.job j
         where j.queue = claim.queue
           and j.state = 'pending'
           and j.run_at <= v_now
         order by j.priority desc, j.run_at, j.seq
         limit claim.max_jobs
           for update skip locked
    ), claimed as (
        update pgbatch.job j
           set state = 'claimed',
               claim_token = gen_random_uuid(),
               attempt = j.attempt + 1,
               claimed_by = claim.worker_id,
               claimed_at = v_now,
               lease_expires_at = v_now + claim.lease
         where j.id = any(array(select p.id from picked p))
        returning j.id, j.queue, j.payload, j.priority, j.attempt, j.max_attempts, j.run_at,
                  j.claim_token, j.lease_expires_at, j.created_at, j.dedup_key, j.last_error, j.seq
    )
    select c.id, c.queue, c.payload, c.priority, c.attempt, c.max_attempts, c.run_at,
           c.claim_token, c.lease_expires_at, c.created_at, c.dedup_key, c.last_error
      from claimed c
     order by c.priority desc, c.run_at, c.seq;
end
$$;

-- ==== functions/050_settled_result.sql ====
-- Resolves a settlement call whose claim is not (or no longer) live:
-- - the same token already settled the job with the same operation: return
--   that call's result (a retry after a connection lost at COMMIT);
-- - the job exists but this token does not hold it: ClaimLost (PB001);
-- - no such job at all: JobNotFound (PB003).
-- `op` is 'ack', 'nack', 'dead_letter' or 'release'.
create or replace function pgbatch._settled_result(job_id uuid, claim_token uuid, op text)
returns jsonb
language plpgsql
as $$
declare
    v_result jsonb;
    v_state  text;
begin
    select j.settled_result, j.state into v_result, v_state
      from pgbatch.job j
     where j.id = _settled_result.job_id;
    if found then
        if v_result is not null and v_result ->> 'op' = op
           and (select j.settled_token from pgbatch.job j where j.id = _settled_result.job_id) = claim_token then
            return v_result;
        end if;
        perform pgbatch._raise('PB001',
            format('claim lost: job %s is %s and token %s does not hold it', job_id, v_state, claim_token),
            'the lease expired and the job was requeued, or another worker claimed it');
    end if;
    select a.result, a.state into v_result, v_state
      from pgbatch.job_archive a
     where a.id = _settled_result.job_id and a.claim_token = _settled_result.claim_token;
    if found and v_result ->> 'op' = op then
        return v_result;
    end if;
    select a.state into v_state from pgbatch.job_archive a where a.id = _settled_result.job_id;
    if found then
        perform pgbatch._raise('PB001',
            format('claim lost: job %s is already %s', job_id, v_state),
            'the job was settled by another claim or call');
    end if;
    perform pgbatch._raise('PB003', format('job %s not found', job_id));
    return null;
end
$$;

-- ==== functions/051_apply_effects.sql ====
-- Applies ack effects in the caller's transaction and returns the ids of the
-- follow-up jobs. `effects` is a JSON object with any of:
--   "enqueue":   array of enqueue requests (see enqueue_many)
--   "kv_put":    object of key -> JSON value, upserted into pgbatch.kv
--   "kv_delete": array of keys removed from pgbatch.kv
-- Anything else is InvalidEffects (PB008).
create or replace function pgbatch._apply_effects(effects jsonb)
returns uuid[]
language plpgsql
as $$
declare
    v_ids uuid[] := '{}';
    v_bad text;
begin
    if effects is null or effects = 'null'::jsonb or effects = '{}'::jsonb then
        return v_ids;
    end if;
    if jsonb_typeof(effects) <> 'object' then
        perform pgbatch._raise('PB008', format('invalid effects: must be a JSON object, got %s', jsonb_typeof(effects)));
    end if;
    select string_agg(k, ', ') into v_bad from jsonb_object_keys(effects) k
     where k not in ('enqueue', 'kv_put', 'kv_delete');
    if v_bad is not null then
        perform pgbatch._raise('PB008', format('invalid effects: unknown key(s) %s (allowed: enqueue, kv_put, kv_delete)', v_bad));
    end if;
    if effects ? 'enqueue' and jsonb_typeof(effects -> 'enqueue') <> 'array' then
        perform pgbatch._raise('PB008', 'invalid effects: "enqueue" must be an array of enqueue requests');
    end if;
    if effects ? 'kv_put' and jsonb_typeof(effects -> 'kv_put') <> 'object' then
        perform pgbatch._raise('PB008', 'invalid effects: "kv_put" must be an object of key -> value');
    end if;
    if effects ? 'kv_delete' and (jsonb_typeof(effects -> 'kv_delete') <> 'array'
        or exists (select 1 from jsonb_array_elements(effects -> 'kv_delete') e where jsonb_typeof(e) <> 'string')) then
        perform pgbatch._raise('PB008', 'invalid effects: "kv_delete" must be an array of key strings');
    end if;

    if effects ? 'enqueue' then
        begin
            v_ids := pgbatch._enqueue_requests(effects -> 'enqueue');
        exception when sqlstate 'PB007' or sqlstate 'PB005' or sqlstate 'PB006' then
            perform pgbatch._raise('PB008', 'invalid effects: ' || sqlerrm);
        end;
    end if;
    if effects ? 'kv_put' then
        insert into pgbatch.kv as kv (key, value, updated_at)
        select e.key, e.value, pgbatch.now() from jsonb_each(effects -> 'kv_put') e
        on conflict (key) do update set value = excluded.value, updated_at = excluded.updated_at;
    end if;
    if effects ? 'kv_delete' then
        delete from pgbatch.kv kv
         where kv.key in (select jsonb_array_elements_text(effects -> 'kv_delete'));
    end if;
    return v_ids;
end
$$;

-- ==== functions/052_ack.sql ====
-- ack: marks a claimed job done and applies `effects` (see _apply_effects:
-- follow-up enqueues, kv_put, kv_delete) in the same transaction: all or
-- nothing. Returns the follow-up job ids. ClaimLost (PB001) when the claim is
-- gone (lease reaped, token stale); nothing is applied then. A retry with the
-- token that already acked the job returns the first call's ids.
create or replace function pgbatch.ack(job_id uuid, claim_token uuid, effects jsonb default null)
returns uuid[]
language plpgsql
as $$
declare
    r     pgbatch.job;
    v_ids uuid[] := '{}';
begin
    delete from pgbatch.job j
     where j.id = ack.job_id and j.claim_token = ack.claim_token
    returning j.* into r;
    if not found then
        return array(select jsonb_array_elements_text(pgbatch._settled_result(job_id, claim_token, 'ack') -> 'ids')::uuid);
    end if;
    perform pgbatch._durable_commit();
    if effects is not null then
        v_ids := pgbatch._apply_effects(effects);
    end if;
    perform pgbatch._archive(r, 'done', claim_token, jsonb_build_object('op', 'ack', 'ids', to_jsonb(v_ids)));
    return v_ids;
end
$$;

-- ==== functions/053_ack_many.sql ====
-- ack_many: settles many claims in one transaction. `acks` is a JSON array of
-- {"job_id": uuid, "claim_token": uuid, "effects": {...}?}. Each entry
-- succeeds or fails on its own, without aborting the others; one outcome row
-- per entry, in order: status 'acked' (with follow_ups), 'claim_lost'
-- (PB001), 'not_found' (PB003) or 'error' (any other SQLSTATE, e.g. PB008 for
-- malformed effects; that entry's effects are not applied and its job stays
-- claimed). Entries without effects are settled set-wise in one statement
-- (_ack_plain, as in ack_ids).
create or replace function pgbatch.ack_many(acks jsonb)
returns setof pgbatch.ack_outcome
language plpgsql
as $$
declare
    v_ids    uuid[];
    v_toks   uuid[];
    v_eff    boolean[];
    v_plain  integer[];
    v_missed integer[];
    v_hit    boolean[];
    v_fids   uuid[];
    k        integer;
begin
    if acks is null or jsonb_typeof(acks) <> 'array' then
        perform pgbatch._raise('PB007', 'acks must be a JSON array of {"job_id", "claim_token", "effects"?} objects');
    end if;
    if exists (select 1 from jsonb_array_elements(acks) x
                where jsonb_typeof(x) <> 'object'
                   or jsonb_typeof(x -> 'job_id') is distinct from 'string'
                   or jsonb_typeof(x -> 'claim_token') is distinct from 'string') then
        perform pgbatch._raise('PB007', 'each ack must be an object with string "job_id" and "claim_token"');
    end if;
    perform pgbatch._durable_commit();

    begin
        select coalesce(array_agg((x.a ->> 'job_id')::uuid order by x.ord), '{}'),
               coalesce(array_agg((x.a ->> 'claim_token')::uuid order by x.ord), '{}'),
               coalesce(array_agg(coalesce(x.a -> 'effects', 'null'::jsonb)
                                  not in ('null'::jsonb, '{}'::jsonb) order by x.ord), '{}')
          into v_ids, v_toks, v_eff
          from jsonb_array_elements(acks) with ordinality as x(a, ord);
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid ack entry: ' || sqlerrm);
    end;

    -- entries without effects: one set-wise statement; v_hit marks those it settled
    v_plain := array(select s from generate_subscripts(v_ids, 1) s where not v_eff[s] order by s);
    v_missed := pgbatch._ack_plain(
        array(select v_ids[p] from unnest(v_plain) with ordinality u(p, o) order by o),
        array(select v_toks[p] from unnest(v_plain) with ordinality u(p, o) order by o));
    v_hit := array_fill(false, array[cardinality(v_ids)]);
    foreach k in array v_plain loop
        v_hit[k] := true;
    end loop;
    foreach k in array coalesce(v_missed, '{}') loop
        v_hit[v_plain[k]] := false;
    end loop;

    -- the rest one by one, each in its own subtransaction: entries with effects,
    -- and the plain ones the statement missed (a retry, or a lost claim)
    for k in 1 .. cardinality(v_ids) loop
        if v_hit[k] then
            return next row(v_ids[k], 'acked', null::text, null::text, '{}'::uuid[])::pgbatch.ack_outcome;
            continue;
        end if;
        begin
            v_fids := pgbatch.ack(v_ids[k], v_toks[k], acks -> (k - 1) -> 'effects');
            return next row(v_ids[k], 'acked', null::text, null::text, v_fids)::pgbatch.ack_outcome;
        exception
            when sqlstate 'PB001' then
                return next row(v_ids[k], 'claim_lost', 'PB001', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when sqlstate 'PB003' then
                return next row(v_ids[k], 'not_found', 'PB003', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when others then
                return next row(v_ids[k], 'error', sqlstate, sqlerrm, null::uuid[])::pgbatch.ack_outcome;
        end;
    end loop;
end
$$;

-- ==== functions/054_nack.sql ====
-- nack: the attempt failed. Returns the job to pending at `retry_at`
-- (default: now + backoff(attempt, backoff_base, backoff_cap), exponential
-- with jitter) and stores `error` (any JSON, e.g. {"type", "message",
-- "traceback"}) as last_error. When the attempt was the last allowed one
-- (attempt >= max_attempts) the job is dead-lettered instead; a job whose
-- cancellation was requested while it ran ends cancelled. Returns the state
-- the job is left in: 'pending', 'dead' or 'cancelled'. ClaimLost (PB001)
-- when the claim is gone; a retry with the same token returns the first
-- call's answer.
create or replace function pgbatch.nack(
    job_id       uuid,
    claim_token  uuid,
    error        jsonb       default null,
    retry_at     timestamptz default null,
    backoff_base interval    default '1 second',
    backoff_cap  interval    default '1 hour'
)
returns text
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_now   timestamptz := pgbatch.now();
    v_state text;
    v_at    timestamptz;
begin
    select * into r from pgbatch.job j
     where j.id = nack.job_id and j.claim_token = nack.claim_token
       for update;
    if not found then
        return pgbatch._settled_result(job_id, claim_token, 'nack') ->> 'state';
    end if;
    perform pgbatch._durable_commit();
    if r.cancel_requested or r.attempt >= r.max_attempts then
        v_state := case when r.cancel_requested then 'cancelled' else 'dead' end;
        delete from pgbatch.job j where j.id = r.id;
        perform pgbatch._archive(r, v_state, claim_token,
                                 jsonb_build_object('op', 'nack', 'state', v_state), error);
        return v_state;
    end if;
    v_at := coalesce(retry_at, v_now + pgbatch.backoff(r.attempt, backoff_base, backoff_cap));
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, run_at = v_at, last_error = error,
           settled_token = nack.claim_token,
           settled_result = '{"op": "nack", "state": "pending"}'
     where j.id = r.id;
    if v_at <= v_now then
        perform pgbatch._announce(r.queue, 1);
    else
        perform pgbatch._announce(r.queue, 0, v_at);
    end if;
    return 'pending';
end
$$;

-- ==== functions/055_dead_letter.sql ====
-- dead_letter: moves a claimed job to dead (no further attempts), storing
-- `reason` as last_error {"type": "DeadLettered", "message": reason}.
-- ClaimLost (PB001) when the claim is gone; idempotent for the same token.
create or replace function pgbatch.dead_letter(job_id uuid, claim_token uuid, reason text default null)
returns void
language plpgsql
as $$
declare
    r pgbatch.job;
begin
    delete from pgbatch.job j
     where j.id = dead_letter.job_id and j.claim_token = dead_letter.claim_token
    returning j.* into r;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'dead_letter');
        return;
    end if;
    perform pgbatch._durable_commit();
    perform pgbatch._archive(r, 'dead', claim_token, '{"op": "dead_letter"}',
                             jsonb_build_object('type', 'DeadLettered', 'message', reason));
end
$$;

-- ==== functions/056_renew_lease.sql ====
-- renew_lease: extends a claim's lease to now + `lease` and returns the new
-- expiry. Works after the lease expired as long as nobody reaped or
-- re-claimed the job. ClaimLost (PB001) when the claim is gone; JobCancelled
-- (PB009) when cancel_job() was called for the job: the worker should stop
-- and nack it (it then ends cancelled). Commits without waiting for the WAL
-- flush (a lost renewal can only cause a redelivery).
create or replace function pgbatch.renew_lease(job_id uuid, claim_token uuid, lease interval default '30 seconds')
returns timestamptz
language plpgsql
as $$
declare
    v_expires   timestamptz;
    v_cancelled boolean;
begin
    if lease is null or lease <= interval '0' then
        perform pgbatch._raise('PB007', format('invalid lease: %s, must be positive', coalesce(lease::text, 'NULL')));
    end if;
    perform pgbatch._relax_commit();
    update pgbatch.job j
       set lease_expires_at = pgbatch.now() + renew_lease.lease
     where j.id = renew_lease.job_id and j.claim_token = renew_lease.claim_token
    returning j.lease_expires_at, j.cancel_requested into v_expires, v_cancelled;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'renew');
    end if;
    if v_cancelled then
        perform pgbatch._raise('PB009', format('job %s was cancelled', job_id),
                               'stop working on it and nack it; it ends cancelled');
    end if;
    return v_expires;
end
$$;

-- ==== functions/057_release.sql ====
-- release: gives a claim back without consuming an attempt (graceful worker
-- shutdown): the job is pending again at once, its attempt count restored.
-- A job whose cancellation was requested ends cancelled instead.
-- ClaimLost (PB001) when the claim is gone; idempotent for the same token.
create or replace function pgbatch.release(job_id uuid, claim_token uuid)
returns void
language plpgsql
as $$
declare
    v_queue     text;
    v_cancelled boolean;
    r           pgbatch.job;
begin
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, attempt = greatest(j.attempt - 1, 0),
           settled_token = release.claim_token, settled_result = '{"op": "release"}'
     where j.id = release.job_id and j.claim_token = release.claim_token
    returning j.queue, j.cancel_requested into v_queue, v_cancelled;
    if not found then
        perform pgbatch._settled_result(job_id, claim_token, 'release');
        return;
    end if;
    if v_cancelled then
        -- cancellation was requested while it ran: it ends cancelled
        delete from pgbatch.job j where j.id = release.job_id returning j.* into r;
        perform pgbatch._archive(r, 'cancelled', claim_token, '{"op": "release"}');
        return;
    end if;
    perform pgbatch._announce(v_queue, 1);
end
$$;

-- ==== functions/058_ack_plain.sql ====
-- Settles job_ids[i] with claim_tokens[i] (acks without effects) set-wise in
-- one statement: delete the live rows the tokens hold, archive them as done,
-- count them. Returns the 1-based positions of the entries that are not
-- acked by their token (in order; NULL when all are). An entry whose token
-- acked the job in an earlier call (a retry) counts as acked. The caller
-- settles the rest one by one with ack() (ClaimLost or JobNotFound) and has
-- restored durable commit. Shared by ack_ids and ack_many.
-- The plan is pinned, because the live table's statistics swing between
-- empty and full (autoanalyze may sample it at a quiet moment), and a plan
-- made while it looked empty would walk the whole table for every entry:
-- the live rows are found by `id = any(job_ids)` (one probe of job_pkey per
-- entry; seq scans off), and paired with their entries by a hash join
-- (nested loops and merge joins off), so a batch costs O(entries) whatever
-- the estimates.
create or replace function pgbatch._ack_plain(job_ids uuid[], claim_tokens uuid[])
returns integer[]
language plpgsql
set enable_seqscan = off
set enable_nestloop = off
set enable_mergejoin = off
as $$
declare
    v_now    timestamptz := pgbatch.now();
    v_acked  bigint;
    v_missed integer[];
begin
    with del as (
        delete from pgbatch.job j
         using unnest(job_ids, claim_tokens) as e(id, tok)
         where j.id = any(job_ids) and j.id = e.id and j.claim_token = e.tok
        returning j.id, j.queue, j.payload, j.priority, j.run_at, j.attempt, j.max_attempts,
                  j.dedup_key, j.created_at, j.claim_token, j.claimed_by, j.last_error
    ), arch as (
        insert into pgbatch.job_archive
            (id, queue, payload, priority, run_at, state, attempt, max_attempts, dedup_key,
             created_at, finished_at, claim_token, claimed_by, last_error, result)
        select d.id, d.queue, d.payload, d.priority, d.run_at, 'done', d.attempt, d.max_attempts,
               d.dedup_key, d.created_at, v_now, d.claim_token, d.claimed_by, d.last_error,
               '{"op": "ack", "ids": []}'::jsonb
          from del d
        returning queue
    ), counted as (
        insert into pgbatch.queue_count (queue, done)
        select a.queue, count(*) from arch a group by a.queue
        returning 1
    )
    select count(*) into v_acked from arch;
    if v_acked = cardinality(job_ids) then
        return null;
    end if;
    -- some entry missed (a lost claim, a retry, a duplicate): find which
    select array_agg(e.ord order by e.ord) into v_missed
      from unnest(job_ids, claim_tokens) with ordinality as e(id, tok, ord)
     where (select a.result ->> 'op' from pgbatch.job_archive a
             where a.id = e.id and a.claim_token = e.tok) is distinct from 'ack';
    return v_missed;
end
$$;

-- ==== functions/059_ack_ids.sql ====
-- ack_ids: the fast path of ack_many for acks without effects. Settles
-- job_ids[i] with claim_tokens[i] for every i, all in one transaction and
-- one set-wise statement, and returns a row only for the entries that were
-- NOT acked, in input order: status 'claim_lost' (PB001) or 'not_found'
-- (PB003). No row means every entry was acked. An entry whose token already
-- acked its job (a retry after a connection lost at COMMIT) counts as acked.
-- The arrays must have the same length and no NULLs (PB007).
create or replace function pgbatch.ack_ids(job_ids uuid[], claim_tokens uuid[])
returns setof pgbatch.ack_outcome
language plpgsql
as $$
declare
    v_missed integer[];
    i        integer;
begin
    if job_ids is null or claim_tokens is null then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must not be NULL');
    end if;
    if cardinality(job_ids) <> cardinality(claim_tokens) then
        perform pgbatch._raise('PB007', format('job_ids has %s entries but claim_tokens has %s',
                                               cardinality(job_ids), cardinality(claim_tokens)));
    end if;
    if array_position(job_ids, null) is not null or array_position(claim_tokens, null) is not null then
        perform pgbatch._raise('PB007', 'job_ids and claim_tokens must not contain NULLs');
    end if;
    perform pgbatch._durable_commit();

    v_missed := pgbatch._ack_plain(job_ids, claim_tokens);
    if v_missed is null then
        return;
    end if;
    -- the rest one by one (ack() reports why the token does not hold its job)
    foreach i in array v_missed loop
        begin
            perform pgbatch.ack(job_ids[i], claim_tokens[i]);
        exception
            when sqlstate 'PB001' then
                return next row(job_ids[i], 'claim_lost', 'PB001', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
            when sqlstate 'PB003' then
                return next row(job_ids[i], 'not_found', 'PB003', sqlerrm, null::uuid[])::pgbatch.ack_outcome;
        end;
    end loop;
end
$$;

-- ==== functions/060_requeue_dead_job.sql ====
-- requeue_dead_job: revives a dead job as pending at `run_at` (default now)
-- with a fresh attempt count; returns its id. JobNotFound (PB003) when no
-- dead record exists (never created, or swept by retention); InvalidState
-- (PB004) when the job is not dead; DedupConflict (PB010) when a live job
-- already holds its dedup_key.
create or replace function pgbatch.requeue_dead_job(job_id uuid, run_at timestamptz default null)
returns uuid
language plpgsql
as $$
declare
    a       pgbatch.job_archive;
    v_now   timestamptz := pgbatch.now();
    v_at    timestamptz := coalesce(requeue_dead_job.run_at, v_now);
    v_state text;
begin
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

-- ==== functions/061_cancel_job.sql ====
-- cancel_job: a pending job is cancelled at once (archived as 'cancelled',
-- returns 'cancelled'); a claimed job is flagged (returns
-- 'cancel_requested'): its next renew_lease raises JobCancelled (PB009), and
-- when it is nacked, released or its lease is reaped it ends cancelled (an
-- ack still marks it done: the work completed). Cancelling a cancelled job
-- returns 'cancelled' again. InvalidState (PB004) for a done or dead job;
-- JobNotFound (PB003) for an unknown id.
create or replace function pgbatch.cancel_job(job_id uuid)
returns text
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_state text;
begin
    select * into r from pgbatch.job j where j.id = cancel_job.job_id for update;
    if found then
        if r.state = 'pending' then
            delete from pgbatch.job j where j.id = r.id;
            perform pgbatch._archive(r, 'cancelled', null, '{"op": "cancel"}');
            return 'cancelled';
        end if;
        update pgbatch.job j set cancel_requested = true where j.id = r.id;
        return 'cancel_requested';
    end if;
    select a.state into v_state from pgbatch.job_archive a where a.id = cancel_job.job_id;
    if v_state = 'cancelled' then
        return 'cancelled';
    elsif v_state is not null then
        perform pgbatch._raise('PB004', format('job %s is %s and cannot be cancelled', job_id, v_state));
    end if;
    perform pgbatch._raise('PB003', format('job %s not found', job_id));
    return null;
end
$$;

-- ==== functions/062_expire_claim.sql ====
-- Ends a claim that its worker can no longer settle (lease expired, or the
-- node restarted): the attempt it consumed counts. The job goes back to
-- pending now, or to dead when that was its last attempt, or to cancelled
-- when cancellation was requested. The caller holds the row lock. Returns the
-- new state.
create or replace function pgbatch._expire_claim(r pgbatch.job, reason text)
returns text
language plpgsql
as $$
declare
    v_error jsonb := jsonb_build_object('type', 'LeaseExpired', 'message', reason,
                                        'worker', r.claimed_by, 'attempt', r.attempt);
begin
    if r.cancel_requested or r.attempt >= r.max_attempts then
        delete from pgbatch.job j where j.id = r.id;
        perform pgbatch._archive(r, case when r.cancel_requested then 'cancelled' else 'dead' end,
                                 r.claim_token, '{"op": "reap"}', v_error);
        return case when r.cancel_requested then 'cancelled' else 'dead' end;
    end if;
    update pgbatch.job j
       set state = 'pending', claim_token = null, claimed_by = null, claimed_at = null,
           lease_expires_at = null, run_at = pgbatch.now(), last_error = v_error
     where j.id = r.id;
    return 'pending';
end
$$;

-- ==== functions/063_reap_expired.sql ====
-- reap_expired: ends up to `limit` claims whose lease has expired (database
-- time): requeued at once (the attempt counts), or dead-lettered when it was
-- the last attempt. Safe on many nodes at once (FOR UPDATE SKIP LOCKED: each
-- expired claim is processed once). Announces the requeued jobs. Returns the
-- number of claims reaped. Commits without waiting for the WAL flush.
create or replace function pgbatch.reap_expired("limit" integer default 1000)
returns integer
language plpgsql
as $$
declare
    r       pgbatch.job;
    v_n     integer := 0;
    v_state text;
    v_ready jsonb := '{}';
begin
    if reap_expired."limit" is null or reap_expired."limit" < 1 then
        perform pgbatch._raise('PB007', 'invalid limit: must be at least 1');
    end if;
    perform pgbatch._relax_commit();
    for r in
        select * from pgbatch.job j
         where j.state = 'claimed' and j.lease_expires_at < pgbatch.now()
         order by j.lease_expires_at
         limit reap_expired."limit"
           for update skip locked
    loop
        v_state := pgbatch._expire_claim(r, 'lease expired');
        v_n := v_n + 1;
        if v_state = 'pending' then
            v_ready := jsonb_set(v_ready, array[r.queue], to_jsonb(coalesce((v_ready ->> r.queue)::integer, 0) + 1));
        end if;
    end loop;
    perform pgbatch._announce(k, v::bigint) from jsonb_each_text(v_ready) as x(k, v);
    return v_n;
end
$$;

-- ==== functions/064_sweep_retention.sql ====
-- sweep_retention: deletes up to `limit` archived records: done and
-- cancelled ones finished more than `done_after` ago, dead ones more than
-- `dead_after` ago. Returns the number deleted. Safe on many nodes at once.
-- Commits without waiting for the WAL flush.
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
    perform pgbatch._relax_commit();
    with victims as (
        select a.id from pgbatch.job_archive a
         where (a.state in ('done', 'cancelled') and a.finished_at < v_now - done_after)
            or (a.state = 'dead' and a.finished_at < v_now - dead_after)
         limit sweep_retention."limit"
           for update skip locked
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
    return v_n;
end
$$;

-- ==== functions/070_pause_queue.sql ====
-- pause_queue: claims on the queue return nothing until resume_queue().
-- Enqueues still succeed; running claims are not affected.
create or replace function pgbatch.pause_queue(queue text)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check_queue(queue);
    insert into pgbatch.queue as q (name, paused) values (pause_queue.queue, true)
    on conflict (name) do update set paused = true;
end
$$;

-- ==== functions/071_resume_queue.sql ====
-- resume_queue: claims on the queue work again; listeners are told how many
-- jobs are claimable now.
create or replace function pgbatch.resume_queue(queue text)
returns void
language plpgsql
as $$
declare
    v_ready bigint;
begin
    perform pgbatch._check_queue(queue);
    insert into pgbatch.queue as q (name, paused) values (resume_queue.queue, false)
    on conflict (name) do update set paused = false;
    select count(*) into v_ready from pgbatch.job j
     where j.queue = resume_queue.queue and j.state = 'pending' and j.run_at <= pgbatch.now();
    perform pgbatch._announce(resume_queue.queue, v_ready);
end
$$;

-- ==== functions/072_set_queue_notify.sql ====
-- set_queue_notify: switches the queue's NOTIFY on or off. Off saves the
-- NOTIFY cost on every enqueue (it takes a database-wide lock at commit);
-- workers then find the queue's jobs by polling only.
create or replace function pgbatch.set_queue_notify(queue text, enabled boolean)
returns void
language plpgsql
as $$
begin
    perform pgbatch._check_queue(queue);
    if enabled is null then
        perform pgbatch._raise('PB007', 'enabled must be true or false');
    end if;
    insert into pgbatch.queue as q (name, notify) values (set_queue_notify.queue, enabled)
    on conflict (name) do update set notify = excluded.notify;
end
$$;

-- ==== functions/073_queue_stats.sql ====
-- queue_stats: per queue (all queues when `queue` is null): pending
-- (claimable now), scheduled (run_at in the future), claimed, and the
-- archived done, dead and cancelled records not yet swept, the age of the
-- oldest claimable job, and whether the queue is paused. Live counts read the
-- live table (as small as the backlog); archived counts sum append-only
-- deltas (see compact_counters).
create or replace function pgbatch.queue_stats(queue text default null)
returns setof pgbatch.queue_stat
language sql
stable
as $$
    with now_ as (select pgbatch.now() as t),
    live as (
        select j.queue,
               count(*) filter (where j.state = 'pending' and j.run_at <= n.t) as pending,
               count(*) filter (where j.state = 'pending' and j.run_at > n.t)  as scheduled,
               count(*) filter (where j.state = 'claimed')                      as claimed,
               max(n.t - j.run_at) filter (where j.state = 'pending' and j.run_at <= n.t) as oldest
          from pgbatch.job j, now_ n
         where queue_stats.queue is null or j.queue = queue_stats.queue
         group by j.queue
    ), archived as (
        select c.queue, sum(c.done) as done, sum(c.dead) as dead, sum(c.cancelled) as cancelled
          from pgbatch.queue_count c
         where queue_stats.queue is null or c.queue = queue_stats.queue
         group by c.queue
    ), names as (
        select q.name from pgbatch.queue q where queue_stats.queue is null or q.name = queue_stats.queue
        union select l.queue from live l
        union select a.queue from archived a
    )
    select nm.name,
           coalesce(l.pending, 0), coalesce(l.scheduled, 0), coalesce(l.claimed, 0),
           coalesce(a.done, 0)::bigint, coalesce(a.dead, 0)::bigint, coalesce(a.cancelled, 0)::bigint,
           l.oldest,
           coalesce(q.paused, false)
      from names nm
      left join live l on l.queue = nm.name
      left join archived a on a.queue = nm.name
      left join pgbatch.queue q on q.name = nm.name
     order by nm.name
$$;

-- ==== functions/074_compact_counters.sql ====
-- compact_counters: folds the append-only counter deltas of queue_count into
-- one row per queue. Run by the maintenance loop; safe with concurrent
-- settlements and concurrent compactions. Returns the number of delta rows
-- folded.
create or replace function pgbatch.compact_counters()
returns integer
language plpgsql
as $$
declare
    v_n integer;
begin
    perform pgbatch._relax_commit();
    with gone as (
        delete from pgbatch.queue_count c
         where c.queue in (select c2.queue from pgbatch.queue_count c2 group by c2.queue having count(*) > 1)
        returning c.queue, c.done, c.dead, c.cancelled
    ), folded as (
        insert into pgbatch.queue_count (queue, done, dead, cancelled)
        select g.queue, sum(g.done), sum(g.dead), sum(g.cancelled) from gone g group by g.queue
        returning 1
    )
    select count(*) into v_n from gone;
    return v_n;
end
$$;

-- ==== functions/075_kv_get.sql ====
-- kv_get: the value that ack effects stored under `key`, or NULL.
create or replace function pgbatch.kv_get(key text)
returns jsonb
language sql
stable
as $$ select kv.value from pgbatch.kv kv where kv.key = kv_get.key $$;

-- ==== functions/076_announce_due.sql ====
-- announce_due: for every queue with notifications on, announces the jobs
-- that became due since the last call (run_at in (announced_until, now]):
-- the maintenance loop's safety net for due-time hints a listener missed.
-- Jobs that were claimable the moment they were enqueued (run_at =
-- created_at) were announced then and are not announced again.
-- Returns the number of jobs announced. Commits without waiting for the WAL
-- flush.
create or replace function pgbatch.announce_due()
returns bigint
language plpgsql
as $$
declare
    q       record;
    v_now   timestamptz := pgbatch.now();
    v_n     bigint;
    v_total bigint := 0;
begin
    perform pgbatch._relax_commit();
    for q in select x.name, x.announced_until from pgbatch.queue x
              where x.notify and not x.paused and x.announced_until < v_now
                for update skip locked
    loop
        select count(*) into v_n from pgbatch.job j
         where j.queue = q.name and j.state = 'pending'
           and j.run_at > q.announced_until and j.run_at <= v_now
           and j.run_at > j.created_at;
        update pgbatch.queue x set announced_until = v_now where x.name = q.name;
        if v_n > 0 then
            perform pgbatch._announce(q.name, v_n);
            v_total := v_total + v_n;
        end if;
    end loop;
    return v_total;
end
$$;

-- ==== functions/077_next_due.sql ====
-- next_due: the earliest run_at of a pending job in any of `queues`, or NULL
-- when none is pending. Idle workers use it to arm a timer for jobs that
-- become due later.
create or replace function pgbatch.next_due(queues text[])
returns timestamptz
language sql
stable
as $$
    select min(j.run_at) from pgbatch.job j
     where j.queue = any(next_due.queues) and j.state = 'pending'
$$;

-- ==== functions/080_register_node.sql ====
-- register_node: a worker process announces itself under a stable node_id
-- with a fresh boot_id. When the node_id was last registered with another
-- boot_id (the process restarted after a crash), the claims recorded with
-- claimed_by = node_id belong to that dead incarnation: they are ended at
-- once (requeued, or dead-lettered at their last attempt) instead of waiting
-- for their leases. Returns the number of claims released that way.
create or replace function pgbatch.register_node(node_id text, boot_id uuid, info jsonb default '{}')
returns integer
language plpgsql
as $$
#variable_conflict use_column
declare
    v_old   uuid;
    v_n     integer := 0;
    r       pgbatch.job;
    v_ready jsonb := '{}';
begin
    if register_node.node_id is null or length(register_node.node_id) = 0
       or length(register_node.node_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid node_id: must be 1 to 200 characters');
    end if;
    select n.boot_id into v_old from pgbatch.node n where n.node_id = register_node.node_id for update;
    insert into pgbatch.node as n (node_id, boot_id, started_at, heartbeat_at, info)
    values (register_node.node_id, register_node.boot_id, pgbatch.now(), pgbatch.now(), coalesce(register_node.info, '{}'))
    on conflict (node_id) do update
       set boot_id = excluded.boot_id, started_at = excluded.started_at,
           heartbeat_at = excluded.heartbeat_at, info = excluded.info;
    if v_old is not null and v_old <> register_node.boot_id then
        for r in select * from pgbatch.job j
                  where j.state = 'claimed' and j.claimed_by = register_node.node_id
                    for update skip locked
        loop
            if pgbatch._expire_claim(r, 'node restarted') = 'pending' then
                v_ready := jsonb_set(v_ready, array[r.queue], to_jsonb(coalesce((v_ready ->> r.queue)::integer, 0) + 1));
            end if;
            v_n := v_n + 1;
        end loop;
        perform pgbatch._announce(k, v::bigint) from jsonb_each_text(v_ready) as x(k, v);
    end if;
    return v_n;
end
$$;

-- ==== functions/081_heartbeat_node.sql ====
-- heartbeat_node: records that the node incarnation is alive. Returns false
-- when another incarnation registered the same node_id since (this process
-- is a zombie and should stop claiming).
create or replace function pgbatch.heartbeat_node(node_id text, boot_id uuid)
returns boolean
language plpgsql
as $$
begin
    perform pgbatch._relax_commit();
    update pgbatch.node n set heartbeat_at = pgbatch.now()
     where n.node_id = heartbeat_node.node_id and n.boot_id = heartbeat_node.boot_id;
    return found;
end
$$;

-- ==== functions/082_deregister_node.sql ====
-- deregister_node: removes the node's registration at a clean shutdown (only
-- when boot_id still matches). Returns whether a row was removed.
create or replace function pgbatch.deregister_node(node_id text, boot_id uuid)
returns boolean
language plpgsql
as $$
begin
    delete from pgbatch.node n
     where n.node_id = deregister_node.node_id and n.boot_id = deregister_node.boot_id;
    return found;
end
$$;

-- ==== functions/083_check_compat.sql ====
-- check_compat: raises IncompatibleSchema (PB011) when this database was
-- migrated by a pgbatch whose schema has a breaking change that code written
-- for `supported` does not understand. Workers call it at start; returns the
-- database's level otherwise.
create or replace function pgbatch.check_compat(supported integer)
returns integer
language plpgsql
stable
as $$
declare
    v_level integer;
begin
    select m.value::integer into v_level from pgbatch.meta m where m.key = 'schema_compat';
    if v_level > supported then
        perform pgbatch._raise('PB011',
            format('the database schema is at compatibility level %s; this pgbatch supports up to %s', v_level, supported),
            'upgrade pgbatch on this host before starting it against this database');
    end if;
    return v_level;
end
$$;

reset check_function_bodies;
