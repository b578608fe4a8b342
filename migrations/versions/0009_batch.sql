-- pgbatch migration 0009_batch: the batch engine's SQL core (docs/batch.md):
-- job definitions, instances, executions, step executions, contexts,
-- approvals, events; job parameter identity (canonical_params, job_key);
-- register_job, launch_job, restart_execution, next_instance; the worker
-- transitions (start_execution, start_step, commit_chunk, end_step); the
-- operator calls stop_execution and abandon_execution; the invariant checker.
-- FROZEN: never edit this file after release; 0009_batch.py pins its sha256.

-- ==== batch/schema/200_batch_tables.sql ====
-- The batch engine's tables (docs/batch.md, BATCH.md §2). A job definition is
-- registered by the workers that can run it; a job instance is (job_name,
-- job_key); a job execution is one attempt at an instance; a step execution is
-- one attempt at a step inside a job execution. The work of an execution is
-- done by queue jobs on a batch queue (queue_job_id: the current work item,
-- whose claim token fences every chunk commit).

-- Job definitions workers registered (register_job): the steps, their kinds
-- and options, and the fingerprint computed from them.
create table pgbatch.job_definition (
    job_name           text        not null,
    fingerprint        char(64)    not null,
    definition         jsonb       not null,
    registered_at      timestamptz not null,
    last_registered_at timestamptz not null,
    primary key (job_name, fingerprint)
);
create index job_definition_latest on pgbatch.job_definition (job_name, last_registered_at desc);

create table pgbatch.job_instance (
    id                 bigint      generated always as identity primary key,
    job_name           text        not null,
    job_key            char(64)    not null,
    identifying_params jsonb       not null,   -- canonical form, for display
    created_at         timestamptz not null,
    unique (job_name, job_key)
);

create table pgbatch.job_execution (
    id                 bigint      generated always as identity primary key,
    instance_id        bigint      not null references pgbatch.job_instance,
    status             text        not null,
    exit_code          text        not null default 'UNKNOWN',
    exit_message       text,
    params             jsonb       not null,   -- every parameter: {name: {type, value, identifying}}
    definition_fp      char(64)    not null,
    recovery_policy    text        not null,   -- ResumeForward | RestartAll | RestartFrom:<step> | Fail
    queue              text        not null,   -- the batch queue its work items go to
    queue_job_id       uuid,                   -- the current work item (a pgbatch.job id)
    current_step       text,                   -- the step being run / parked at
    pause_reason       text,
    resume_at          timestamptz,            -- timed pause
    stop_requested_at  timestamptz,
    pause_requested_at timestamptz,
    lease_owner        text,                   -- node of the runner
    lease_boot_id      uuid,                   -- boot of the runner's process
    lease_epoch        bigint      not null default 0,
    lease_expires_at   timestamptz,
    resume_count       integer     not null default 0,
    recovery_count     integer     not null default 0,
    handoff_count      integer     not null default 0,
    schedule_id        text,                   -- provenance when launched by the scheduler
    fire_at            timestamptz,
    create_time        timestamptz not null,
    start_time         timestamptz,
    end_time           timestamptz,
    last_updated       timestamptz not null,
    version            bigint      not null default 0,
    check (status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED', 'AWAITING_APPROVAL',
                      'COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED', 'UNKNOWN')),
    check ((status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')) = (end_time is not null))
);
-- I1: at most one active execution per instance, whatever path inserts it.
create unique index job_execution_one_active on pgbatch.job_execution (instance_id)
    where status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED', 'AWAITING_APPROVAL', 'UNKNOWN');
create index job_execution_instance on pgbatch.job_execution (instance_id, id desc);
create index job_execution_leases on pgbatch.job_execution (lease_expires_at)
    where status in ('STARTED', 'STOPPING', 'PAUSING');
create index job_execution_resume_at on pgbatch.job_execution (resume_at)
    where status = 'PAUSED' and resume_at is not null;

create table pgbatch.job_execution_context (
    job_execution_id   bigint      primary key references pgbatch.job_execution on delete cascade,
    context            jsonb       not null
);

create table pgbatch.step_execution (
    id                 bigint      generated always as identity primary key,
    job_execution_id   bigint      not null references pgbatch.job_execution on delete cascade,
    step_name          text        not null,
    step_index         integer     not null,
    status             text        not null,
    exit_code          text        not null default 'EXECUTING',
    exit_message       text,
    commit_count       bigint      not null default 0,
    read_count         bigint      not null default 0,
    filter_count       bigint      not null default 0,
    write_count        bigint      not null default 0,
    read_skip_count    bigint      not null default 0,
    process_skip_count bigint      not null default 0,
    write_skip_count   bigint      not null default 0,
    rollback_count     bigint      not null default 0,
    start_time         timestamptz,
    end_time           timestamptz,
    last_updated       timestamptz not null,
    version            bigint      not null default 0,
    check (status in ('STARTING', 'STARTED', 'PAUSED', 'COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED', 'UNKNOWN')),
    unique (job_execution_id, step_name)   -- a step runs at most once per execution (linear flows)
);

-- The checkpoint of a step: its ExecutionContext and the number of committed chunks.
create table pgbatch.step_execution_context (
    step_execution_id  bigint      primary key references pgbatch.step_execution on delete cascade,
    context            jsonb       not null,
    chunk_seq          bigint      not null default 0
);

-- Approval gates (the gate steps of a later increment use it).
create table pgbatch.approval (
    id                 bigint      generated always as identity primary key,
    job_execution_id   bigint      not null references pgbatch.job_execution on delete cascade,
    gate_name          text        not null,
    status             text        not null check (status in ('PENDING', 'APPROVED', 'REJECTED', 'EXPIRED')),
    requested_at       timestamptz not null,
    expires_at         timestamptz,
    decided_by         text,
    decided_at         timestamptz,
    comment            text,
    unique (job_execution_id, gate_name)
);

-- Append-only audit of every state change, kept with its execution (removed
-- with it). (job_execution_id, kind, request_id) makes API retries idempotent.
create table pgbatch.execution_event (
    id                 bigint      generated always as identity primary key,
    job_execution_id   bigint      not null references pgbatch.job_execution on delete cascade,
    step_execution_id  bigint,
    at                 timestamptz not null,
    kind               text        not null,
    from_status        text,
    to_status          text,
    actor              text,
    request_id         text,
    detail             jsonb,
    unique (job_execution_id, kind, request_id)
);
create index execution_event_request on pgbatch.execution_event (request_id, kind) where request_id is not null;

-- ==== batch/functions/200_canonical_float.sql ====
-- A double's canonical text: the shortest decimal that reads back as the same
-- double (Python's repr), without exponent or trailing zeros. PostgreSQL's
-- own output is round-trip exact but not always shortest (it prints
-- 33083042509669848 where 33083042509669850 is enough), so the digits are
-- cut to the fewest significant ones that still read back the same.
create or replace function pgbatch._canonical_float(value double precision)
returns text
language plpgsql
immutable
parallel safe
set extra_float_digits = 1
as $$
declare
    n   numeric := value::text::numeric;
    e   integer;
    c   numeric;
begin
    if n = 0 then
        return '0';
    end if;
    e := floor(log(10, abs(n)));
    for p in 1 .. 17 loop
        c := round(n, p - 1 - e);
        -- (rounding up may leave the range of double precision)
        if abs(c) <= 1.7976931348623157e308 and c::double precision = value then
            return pgbatch._canonical_number(c);
        end if;
    end loop;
    return pgbatch._canonical_number(n);
end
$$;

-- ==== batch/functions/200_canonical_json.sql ====
-- The canonical text of a JSON value (docs/batch.md "Identity"): object keys
-- sorted by code point, no whitespace, strings escaped as JSON does, numbers
-- as the shortest decimal without exponent or trailing zeros (1.50 -> 1.5,
-- 1e2 -> 100). The same rule as pgbatch.batch's Python reference.
create or replace function pgbatch._canonical_json(value jsonb)
returns text
language sql
immutable
parallel safe
as $$
    select case jsonb_typeof(value)
        when 'object' then
            '{' || coalesce((select string_agg(to_json(e.key)::text || ':' || pgbatch._canonical_json(e.value),
                                               ',' order by e.key collate "C")
                               from jsonb_each(value) e), '') || '}'
        when 'array' then
            '[' || coalesce((select string_agg(pgbatch._canonical_json(a.value), ',' order by a.ord)
                               from jsonb_array_elements(value) with ordinality a(value, ord)), '') || ']'
        when 'number' then pgbatch._canonical_number(value::numeric)
        else value::text
    end
$$;

-- ==== batch/functions/200_canonical_number.sql ====
-- A number's canonical text: the shortest decimal without exponent or
-- trailing zeros, and 0 for zero (never -0).
create or replace function pgbatch._canonical_number(value numeric)
returns text
language sql
immutable
parallel safe
as $$
    select case when value = 0 then '0' else trim_scale(value)::text end
$$;

-- ==== batch/functions/201_batch_param.sql ====
-- One job parameter in canonical form, or its problem (InvalidJobParameters,
-- PB040). `spec` is a plain JSON value (string -> str, integral number -> int,
-- other number -> float, boolean -> bool, array -> json; identifying) or an
-- object {"value": ..., "type": ..., "identifying": ...} that spells the type
-- and the flag out ("value" required; a JSON object parameter must be spelled
-- out). Types and accepted values:
--   str       a JSON string
--   int       an integral JSON number, or a string of digits with an optional sign
--   float     a JSON number or a numeric string; value = shortest round-trip decimal
--   decimal   a JSON number or a numeric string; value = exact decimal, no trailing zeros
--   bool      true or false
--   date      "YYYY-MM-DD"
--   datetime  ISO 8601 with a UTC offset or Z; value = UTC, microseconds, "Z"
--   uuid      a UUID string; value = lowercase, hyphenated
--   json      any JSON value; value = its canonical text
-- Returns (type, value: the canonical JSON text of the normalised value,
-- identifying, problem).
create or replace function pgbatch._batch_param(name text, spec jsonb,
    out type text, out value text, out identifying boolean, out problem text)
language plpgsql
immutable
set extra_float_digits = 1
as $$
declare
    v   jsonb;
    t   text;
    k   text;
    n   numeric;
    f   double precision;
    ts  timestamptz;
begin
    identifying := true;
    if jsonb_typeof(spec) = 'object' then
        for k in select jsonb_object_keys(spec) loop
            if k not in ('value', 'type', 'identifying') then
                problem := format('parameter %s: unknown key %s (a parameter object has "value", "type", "identifying"; '
                                  'pass a JSON object as {"type": "json", "value": ...})', to_json(name), to_json(k));
                return;
            end if;
        end loop;
        if not spec ? 'value' then
            problem := format('parameter %s: "value" is missing', to_json(name));
            return;
        end if;
        if spec ? 'identifying' then
            if jsonb_typeof(spec -> 'identifying') <> 'boolean' then
                problem := format('parameter %s: "identifying" must be true or false', to_json(name));
                return;
            end if;
            identifying := (spec ->> 'identifying')::boolean;
        end if;
        if spec ? 'type' and jsonb_typeof(spec -> 'type') <> 'string' then
            problem := format('parameter %s: "type" must be a string', to_json(name));
            return;
        end if;
        v := spec -> 'value';
        t := spec ->> 'type';
    else
        v := spec;
    end if;

    if t is null then
        t := case jsonb_typeof(v)
                 when 'string' then 'str'
                 when 'boolean' then 'bool'
                 when 'array' then 'json'
                 when 'object' then 'json'
                 when 'number' then case when v::text ~ '^-?[0-9]+$' then 'int' else 'float' end
             end;
        if t is null then
            problem := format('parameter %s: null has no type; spell it out as {"type": "json", "value": null}',
                              to_json(name));
            return;
        end if;
    end if;
    type := t;

    if t = 'str' then
        if jsonb_typeof(v) = 'string' then value := v::text; end if;
    elsif t = 'int' then
        if jsonb_typeof(v) = 'number' and scale(v::numeric) = 0 then
            value := pgbatch._canonical_number(v::numeric);
        elsif jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^[+-]?[0-9]+$' then
            value := pgbatch._canonical_number((v #>> '{}')::numeric);
        end if;
    elsif t in ('float', 'decimal') then
        if jsonb_typeof(v) = 'number' then
            n := v::numeric;
        elsif jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$' then
            n := (v #>> '{}')::numeric;
        end if;
        if n is not null and t = 'float' then
            begin
                f := n::double precision;
                value := to_json(pgbatch._canonical_float(f))::text;
            exception when numeric_value_out_of_range then
                value := null;
            end;
        elsif n is not null then
            value := to_json(pgbatch._canonical_number(n))::text;
        end if;
    elsif t = 'bool' then
        if jsonb_typeof(v) = 'boolean' then value := v::text; end if;
    elsif t = 'date' then
        if jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then
            begin
                value := to_json(to_char((v #>> '{}')::date, 'YYYY-MM-DD'))::text;
            exception when others then
                value := null;
            end;
        end if;
    elsif t = 'datetime' then
        if jsonb_typeof(v) = 'string'
           and v #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' then
            begin
                ts := (v #>> '{}')::timestamptz;
                value := to_json(to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text;
            exception when others then
                value := null;
            end;
        end if;
    elsif t = 'uuid' then
        if jsonb_typeof(v) = 'string'
           and v #>> '{}' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
            value := to_json((v #>> '{}')::uuid::text)::text;
        end if;
    elsif t = 'json' then
        value := pgbatch._canonical_json(v);
    else
        problem := format('parameter %s: unknown type %s (one of str, int, float, decimal, bool, date, datetime, uuid, json)',
                          to_json(name), to_json(t));
        return;
    end if;
    if value is null then
        problem := format('parameter %s: %s is not a valid %s', to_json(name), left(v::text, 100), t);
    end if;
end
$$;

-- ==== batch/functions/202_batch_params.sql ====
-- Every parameter of a launch in canonical form: InvalidJobParameters (PB040)
-- unless `params` is a JSON object of valid parameters (see _batch_param),
-- with non-empty names. Returns the canonical text of the identifying ones
-- ({"name":{"t":type,"v":value}}, keys sorted, no whitespace), and all of
-- them as stored with an execution ({name: {"type", "value", "identifying"}}).
create or replace function pgbatch._batch_params(params jsonb,
    out identifying_text text, out all_params jsonb)
language plpgsql
immutable
as $$
declare
    p       record;
    r       record;
    v_parts text[] := '{}';
begin
    if params is null or jsonb_typeof(params) <> 'object' then
        perform pgbatch._raise('PB040', 'invalid job parameters: must be a JSON object of {name: value}',
                               format('got %s', coalesce(jsonb_typeof(params), 'NULL')));
    end if;
    all_params := '{}';
    for p in select e.key, e.value from jsonb_each(params) e order by e.key collate "C" loop
        if length(p.key) = 0 then
            perform pgbatch._raise('PB040', 'invalid job parameters: a parameter name must not be empty');
        end if;
        r := pgbatch._batch_param(p.key, p.value);
        if r.problem is not null then
            perform pgbatch._raise('PB040', 'invalid job parameters: ' || r.problem);
        end if;
        if r.identifying then
            v_parts := v_parts || (to_json(p.key)::text || ':{"t":' || to_json(r.type)::text || ',"v":' || r.value || '}');
        end if;
        all_params := all_params || jsonb_build_object(p.key, jsonb_build_object(
            'type', r.type, 'value', r.value::jsonb, 'identifying', r.identifying));
    end loop;
    identifying_text := '{' || array_to_string(v_parts, ',') || '}';
end
$$;

-- ==== batch/functions/203_canonical_params.sql ====
-- The canonical JSON text of the identifying parameters of `params` (the
-- text job_key hashes): keys sorted, each {"t": type, "v": normalised value},
-- no whitespace. InvalidJobParameters (PB040) for bad parameters.
create or replace function pgbatch.canonical_params(params jsonb)
returns text
language sql
immutable
as $$
    select (pgbatch._batch_params(params)).identifying_text
$$;

-- ==== batch/functions/204_job_key.sql ====
-- The job key of `params`: lowercase hex sha256 of the UTF-8 bytes of
-- canonical_params(params). Launches from psql and from Python compute it
-- here, so equal identifying parameters reach the same job instance.
create or replace function pgbatch.job_key(params jsonb)
returns text
language sql
immutable
as $$
    select encode(sha256(convert_to(pgbatch.canonical_params(params), 'UTF8')), 'hex')
$$;

-- ==== batch/functions/210_register_job.sql ====
-- Registers a job definition a worker can run, and returns its fingerprint
-- (BATCH.md §1): lowercase hex sha256 of the canonical JSON of
-- {"steps": [[name, kind, reader, writer, chunk_size], ...], "version": version}.
-- `definition` is an object:
--   steps            non-empty array of {"name", "kind": "chunk"|"tasklet"|"gate",
--                    "reader", "writer" (class names, chunk steps), "chunk_size",
--                    "start_limit" (positive integer, default unlimited),
--                    "allow_start_if_complete" (default false)}; names unique
--   version          optional user version (any JSON value)
--   restartable      default true
--   recovery_policy  ResumeForward (default; Fail when not restartable),
--                    RestartAll, RestartFrom:<step>, Fail
--   max_recoveries   default 5
--   queue            the batch queue of its work items, default 'batch'
-- InvalidJobDefinition (PB041) for anything else. Registering the same
-- definition again only updates its last_registered_at; launches use the
-- definition registered last.
create or replace function pgbatch.register_job(job_name text, definition jsonb)
returns text
language plpgsql
as $$
declare
    v_step     jsonb;
    v_names    text[] := '{}';
    v_fp_steps jsonb := '[]';
    v_fp       text;
    v_policy   text;
    v_now      timestamptz := pgbatch.now();
    v_def      jsonb := definition;
    k          text;
begin
    if job_name is null or length(btrim(job_name)) = 0 or length(job_name) > 200 then
        perform pgbatch._raise('PB041', 'invalid job definition: job_name must be non-empty text of at most 200 characters');
    end if;
    if jsonb_typeof(v_def) is distinct from 'object' then
        perform pgbatch._raise('PB041', 'invalid job definition: must be a JSON object');
    end if;
    for k in select jsonb_object_keys(v_def) loop
        if k not in ('steps', 'version', 'restartable', 'recovery_policy', 'max_recoveries', 'queue') then
            perform pgbatch._raise('PB041', format('invalid job definition: unknown key %s', to_json(k)));
        end if;
    end loop;
    if jsonb_typeof(v_def -> 'steps') is distinct from 'array' or jsonb_array_length(v_def -> 'steps') = 0 then
        perform pgbatch._raise('PB041', 'invalid job definition: "steps" must be a non-empty array');
    end if;
    for v_step in select s from jsonb_array_elements(v_def -> 'steps') s loop
        if jsonb_typeof(v_step) <> 'object' or jsonb_typeof(v_step -> 'name') is distinct from 'string'
           or length(v_step ->> 'name') = 0 then
            perform pgbatch._raise('PB041', 'invalid job definition: every step needs a non-empty "name"');
        end if;
        for k in select jsonb_object_keys(v_step) loop
            if k not in ('name', 'kind', 'reader', 'writer', 'chunk_size', 'start_limit', 'allow_start_if_complete') then
                perform pgbatch._raise('PB041', format('invalid job definition: step %s: unknown key %s',
                                                       to_json(v_step ->> 'name'), to_json(k)));
            end if;
        end loop;
        if v_step ->> 'name' = any(v_names) then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s appears twice', to_json(v_step ->> 'name')));
        end if;
        v_names := v_names || (v_step ->> 'name');
        if coalesce(v_step ->> 'kind', '') not in ('chunk', 'tasklet', 'gate') then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "kind" must be chunk, tasklet or gate',
                                                   to_json(v_step ->> 'name')));
        end if;
        if v_step ? 'start_limit' and not (jsonb_typeof(v_step -> 'start_limit') = 'number'
                                           and (v_step ->> 'start_limit') ~ '^[0-9]+$'
                                           and (v_step ->> 'start_limit')::numeric between 1 and 2147483647) then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "start_limit" must be a positive integer',
                                                   to_json(v_step ->> 'name')));
        end if;
        if v_step ? 'chunk_size' and not (jsonb_typeof(v_step -> 'chunk_size') = 'number'
                                          and (v_step ->> 'chunk_size') ~ '^[0-9]+$'
                                          and (v_step ->> 'chunk_size')::numeric between 1 and 2147483647) then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "chunk_size" must be a positive integer',
                                                   to_json(v_step ->> 'name')));
        end if;
        if v_step ? 'allow_start_if_complete' and jsonb_typeof(v_step -> 'allow_start_if_complete') <> 'boolean' then
            perform pgbatch._raise('PB041', format('invalid job definition: step %s: "allow_start_if_complete" must be true or false',
                                                   to_json(v_step ->> 'name')));
        end if;
        v_fp_steps := v_fp_steps || jsonb_build_array(jsonb_build_array(
            v_step -> 'name', v_step -> 'kind', coalesce(v_step -> 'reader', 'null'),
            coalesce(v_step -> 'writer', 'null'), coalesce(v_step -> 'chunk_size', 'null')));
    end loop;
    if v_def ? 'restartable' and jsonb_typeof(v_def -> 'restartable') <> 'boolean' then
        perform pgbatch._raise('PB041', 'invalid job definition: "restartable" must be true or false');
    end if;
    if v_def ? 'max_recoveries' and not (jsonb_typeof(v_def -> 'max_recoveries') = 'number'
                                         and (v_def ->> 'max_recoveries') ~ '^[0-9]+$'
                                         and (v_def ->> 'max_recoveries')::numeric <= 2147483647) then
        perform pgbatch._raise('PB041', 'invalid job definition: "max_recoveries" must be a non-negative integer');
    end if;
    if v_def ? 'queue' then
        if jsonb_typeof(v_def -> 'queue') <> 'string' then
            perform pgbatch._raise('PB041', 'invalid job definition: "queue" must be a string');
        end if;
        perform pgbatch._check(pgbatch._queue_problem(v_def ->> 'queue'));
    end if;
    v_policy := coalesce(v_def ->> 'recovery_policy',
                         case when coalesce((v_def ->> 'restartable')::boolean, true) then 'ResumeForward' else 'Fail' end);
    if not (v_policy in ('ResumeForward', 'RestartAll', 'Fail')
            or (v_policy like 'RestartFrom:%' and substr(v_policy, 13) = any(v_names))) then
        perform pgbatch._raise('PB041', format('invalid job definition: unknown recovery_policy %s '
                                               '(ResumeForward, RestartAll, RestartFrom:<step>, Fail)', to_json(v_policy)));
    end if;
    v_def := v_def || jsonb_build_object('recovery_policy', v_policy);

    v_fp := encode(sha256(convert_to(pgbatch._canonical_json(jsonb_build_object(
                'steps', v_fp_steps, 'version', coalesce(v_def -> 'version', 'null'))), 'UTF8')), 'hex');
    insert into pgbatch.job_definition as d (job_name, fingerprint, definition, registered_at, last_registered_at)
    values (register_job.job_name, v_fp, v_def, v_now, v_now)
    on conflict on constraint job_definition_pkey do update
        set last_registered_at = greatest(d.last_registered_at, excluded.last_registered_at);
    return v_fp;
end
$$;

-- ==== batch/functions/211_batch_event.sql ====
-- Appends one event to an execution's audit trail (I7: one per successful
-- state change). Returns false, inserting nothing, when an event of the same
-- kind and request_id already exists for the execution.
create or replace function pgbatch._batch_event(execution_id bigint, step_execution_id bigint, kind text,
    from_status text, to_status text, request_id text default null, detail jsonb default null)
returns boolean
language plpgsql
as $$
begin
    insert into pgbatch.execution_event as e
        (job_execution_id, step_execution_id, at, kind, from_status, to_status, actor, request_id, detail)
    values (_batch_event.execution_id, _batch_event.step_execution_id, pgbatch.now(), _batch_event.kind,
            _batch_event.from_status, _batch_event.to_status, session_user, _batch_event.request_id,
            _batch_event.detail)
    on conflict on constraint execution_event_job_execution_id_kind_request_id_key do nothing;
    return found;
end
$$;

-- ==== batch/functions/212_batch_enqueue.sql ====
-- Enqueues the next work item of an execution on its batch queue through the
-- queue's own path (_insert_jobs): payload {"kind": "batch_step",
-- "execution_id", "step"}. Records it as the execution's current work item
-- and returns its id. `taken`: the id of the job being acked, when called
-- from a hand-off.
create or replace function pgbatch._batch_enqueue(execution_id bigint, step_name text, taken uuid default null)
returns uuid
language plpgsql
as $$
declare
    v_queue text;
    v_id    uuid;
begin
    select x.queue into v_queue from pgbatch.job_execution x where x.id = _batch_enqueue.execution_id;
    v_id := (pgbatch._insert_jobs(
        array[null]::uuid[], array[v_queue],
        array[jsonb_build_object('kind', 'batch_step', 'execution_id', _batch_enqueue.execution_id,
                                 'step', _batch_enqueue.step_name)],
        array[null]::timestamptz[], array[0], array[null]::text[],
        array[(pgbatch.limits() ->> 'default_max_attempts')::integer], taken, false))[1];
    update pgbatch.job_execution x
       set queue_job_id = v_id, current_step = _batch_enqueue.step_name
     where x.id = _batch_enqueue.execution_id;
    return v_id;
end
$$;

-- ==== batch/functions/213_launch_job.sql ====
-- T1 (BATCH.md §3, §6): launches job `job_name` with `params` (see
-- _batch_param: a plain JSON value is an identifying parameter; an object
-- {"value", "type", "identifying"} spells type and flag out) and returns the
-- new execution's id. In one transaction: finds or creates the job instance
-- (job_name, job_key(params)), locks it, applies the restart rules, inserts
-- the execution (STARTING, the job context copied from the last execution),
-- the event `launched`, and the first work item on the job's batch queue.
-- Refusals change nothing:
--   JobNotRegistered (PB042)                 no worker registered the job
--   InvalidJobParameters (PB040)             bad parameters
--   JobExecutionAlreadyRunningError (PB044)  an execution is STARTING, STARTED,
--                                            STOPPING, PAUSING, PAUSED or AWAITING_APPROVAL
--   JobRestartError (PB045)                  detail = the reason: unknown (an UNKNOWN
--                                            execution: recover_execution() first),
--                                            abandoned, not_restartable
--   JobInstanceAlreadyCompleteError (PB043)  the last execution COMPLETED
-- With `request_id`, a repeated call for the same instance returns the
-- execution the first call created.
create or replace function pgbatch.launch_job(job_name text, params jsonb default '{}', request_id text default null)
returns bigint
language plpgsql
as $$
#variable_conflict use_column
declare
    v_def   pgbatch.job_definition;
    v_p     record;
    v_key   text;
    v_inst  bigint;
    v_last  pgbatch.job_execution;
    v_exec  bigint;
    v_ctx   jsonb := '{}';
    v_first text;
    v_now   timestamptz := pgbatch.now();
begin
    select * into v_def from pgbatch.job_definition d
     where d.job_name = launch_job.job_name
     order by d.last_registered_at desc, d.fingerprint
     limit 1;
    if not found then
        perform pgbatch._raise('PB042', format('job %s is not registered', to_json(launch_job.job_name)),
                               'a worker registers the jobs it can run (register_job) when it starts');
    end if;
    v_p := pgbatch._batch_params(launch_job.params);
    v_key := encode(sha256(convert_to(v_p.identifying_text, 'UTF8')), 'hex');

    insert into pgbatch.job_instance (job_name, job_key, identifying_params, created_at)
    values (launch_job.job_name, v_key, v_p.identifying_text::jsonb, v_now)
    on conflict on constraint job_instance_job_name_job_key_key do nothing;
    select i.id into v_inst from pgbatch.job_instance i
     where i.job_name = launch_job.job_name and i.job_key = v_key
       for update;

    if launch_job.request_id is not null then
        select e.job_execution_id into v_exec
          from pgbatch.execution_event e join pgbatch.job_execution x on x.id = e.job_execution_id
         where e.request_id = launch_job.request_id and e.kind = 'launched' and x.instance_id = v_inst
         limit 1;
        if found then
            return v_exec;
        end if;
    end if;

    select * into v_last from pgbatch.job_execution x where x.instance_id = v_inst order by x.id desc limit 1;
    if found then
        if v_last.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING') then
            perform pgbatch._raise('PB044', format('job instance %s of %s already has a running execution %s (%s)',
                                                   v_inst, to_json(launch_job.job_name), v_last.id, v_last.status));
        elsif v_last.status in ('PAUSED', 'AWAITING_APPROVAL') then
            perform pgbatch._raise('PB044', format('job instance %s of %s already has an execution %s that is %s',
                                                   v_inst, to_json(launch_job.job_name), v_last.id, v_last.status),
                                   case v_last.status when 'PAUSED' then 'use resume_execution()'
                                                      else 'use approve_gate() or reject_gate()' end);
        elsif v_last.status = 'UNKNOWN' then
            perform pgbatch._raise('PB045', format('job instance %s of %s cannot be restarted: execution %s is UNKNOWN; '
                                                   'recover_execution() first', v_inst, to_json(launch_job.job_name), v_last.id),
                                   'unknown');
        elsif v_last.status = 'COMPLETED' then
            perform pgbatch._raise('PB043', format('job instance %s of %s is already complete (execution %s)',
                                                   v_inst, to_json(launch_job.job_name), v_last.id),
                                   'change an identifying parameter to run it again (next_instance)');
        elsif v_last.status = 'ABANDONED' then
            perform pgbatch._raise('PB045', format('job instance %s of %s cannot be restarted: execution %s was abandoned',
                                                   v_inst, to_json(launch_job.job_name), v_last.id),
                                   'abandoned');
        elsif not coalesce((v_def.definition ->> 'restartable')::boolean, true) then
            perform pgbatch._raise('PB045', format('job instance %s of %s cannot be restarted: the job is not restartable',
                                                   v_inst, to_json(launch_job.job_name)),
                                   'not_restartable');
        end if;
        select c.context into v_ctx from pgbatch.job_execution_context c where c.job_execution_id = v_last.id;
    end if;

    v_first := v_def.definition -> 'steps' -> 0 ->> 'name';
    insert into pgbatch.job_execution
        (instance_id, status, params, definition_fp, recovery_policy, queue, current_step, create_time, last_updated)
    values (v_inst, 'STARTING', v_p.all_params, v_def.fingerprint, v_def.definition ->> 'recovery_policy',
            coalesce(v_def.definition ->> 'queue', 'batch'), v_first, v_now, v_now)
    returning id into v_exec;
    insert into pgbatch.job_execution_context (job_execution_id, context) values (v_exec, coalesce(v_ctx, '{}'));
    perform pgbatch._batch_event(v_exec, null, 'launched', null, 'STARTING', launch_job.request_id,
                                 case when v_last.id is not null then jsonb_build_object('restart_of', v_last.id) end);
    perform pgbatch._batch_enqueue(v_exec, v_first);
    return v_exec;
end
$$;

-- ==== batch/functions/214_restart_execution.sql ====
-- Restarts the job instance of execution `execution_id` with that
-- execution's parameters (launch_job's rules and errors), and returns the new
-- execution's id. JobExecutionNotFound (PB047) for an unknown id.
create or replace function pgbatch.restart_execution(execution_id bigint, request_id text default null)
returns bigint
language plpgsql
as $$
declare
    v_name   text;
    v_params jsonb;
begin
    select i.job_name, x.params into v_name, v_params
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where x.id = restart_execution.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', restart_execution.execution_id));
    end if;
    return pgbatch.launch_job(v_name, v_params, restart_execution.request_id);
end
$$;

-- ==== batch/functions/215_next_instance.sql ====
-- "Run again": `params` with the identifying int parameter run_id set to one
-- more than the highest run_id of any instance of `job_name` (1 for the
-- first). Pass the result to launch_job.
create or replace function pgbatch.next_instance(job_name text, params jsonb default '{}')
returns jsonb
language sql
stable
as $$
    select coalesce(next_instance.params, '{}') || jsonb_build_object('run_id', jsonb_build_object(
        'type', 'int', 'identifying', true,
        'value', coalesce((select max((i.identifying_params -> 'run_id' ->> 'v')::numeric)
                             from pgbatch.job_instance i
                            where i.job_name = next_instance.job_name
                              and i.identifying_params -> 'run_id' ->> 't' = 'int'), 0) + 1))
$$;

-- ==== batch/functions/220_batch_fence.sql ====
-- The fence of every worker call on an execution: locks the work item's
-- queue row (ClaimLost, PB001, unless `claim_token` holds `job_id`), then the
-- execution's row, and checks that this work item is the execution's current
-- one and that the execution is running (STARTED, STOPPING, PAUSING):
-- FencedOut (PB046) otherwise, e.g. for a zombie whose work was handed to
-- another claim. JobExecutionNotFound (PB047) for an unknown execution.
-- Returns the locked execution row.
create or replace function pgbatch._batch_fence(execution_id bigint, job_id uuid, claim_token uuid)
returns pgbatch.job_execution
language plpgsql
as $$
declare
    x pgbatch.job_execution;
begin
    perform 1 from pgbatch.job j
     where j.id = _batch_fence.job_id and j.claim_token = _batch_fence.claim_token
       for update;
    if not found then
        perform pgbatch._settled_result(_batch_fence.job_id, _batch_fence.claim_token, 'fence');
        perform pgbatch._raise('PB001', format('claim of job %s is lost', _batch_fence.job_id));
    end if;
    select * into x from pgbatch.job_execution e where e.id = _batch_fence.execution_id for update;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', _batch_fence.execution_id));
    end if;
    if x.queue_job_id is distinct from _batch_fence.job_id or x.status not in ('STARTED', 'STOPPING', 'PAUSING') then
        perform pgbatch._raise('PB046', format('fenced out of job execution %s', x.id),
                               format('the execution is %s and its current work item is %s, not %s',
                                      x.status, x.queue_job_id, _batch_fence.job_id));
    end if;
    return x;
end
$$;

-- ==== batch/functions/221_start_execution.sql ====
-- T2: the worker that claimed work item `job_id` (with `claim_token`) of
-- execution `execution_id` takes it over: STARTING -> STARTED, lease_owner =
-- the claim's claimed_by, lease_boot_id = `boot_id`, lease_epoch + 1,
-- start_time set once, event `claimed`. A STARTED, STOPPING or PAUSING
-- execution whose current work item is this one was left by a lost worker
-- (its claim was reaped and claimed again): it is resumed forward (same
-- execution, same step row), recovery_count + 1, event `recovered`. Any other
-- status (stopped or abandoned while the item waited, a stale item) changes
-- nothing: the returned status says so and the worker acks its item.
-- Returns (status, lease_epoch, current_step, job_name, definition_fp):
-- the worker runs the definition it registered with that fingerprint. ClaimLost (PB001) when the
-- claim is not held; JobExecutionNotFound (PB047).
create or replace function pgbatch.start_execution(execution_id bigint, job_id uuid, claim_token uuid,
    boot_id uuid default null)
returns table (status text, lease_epoch bigint, current_step text, job_name text, definition_fp text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_owner text;
    v_lease timestamptz;
    v_from  text;
    x       pgbatch.job_execution;
begin
    select j.claimed_by, j.lease_expires_at into v_owner, v_lease from pgbatch.job j
     where j.id = start_execution.job_id and j.claim_token = start_execution.claim_token
       for update;
    if not found then
        perform pgbatch._settled_result(start_execution.job_id, start_execution.claim_token, 'fence');
        perform pgbatch._raise('PB001', format('claim of job %s is lost', start_execution.job_id));
    end if;
    select * into x from pgbatch.job_execution e where e.id = start_execution.execution_id for update;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', start_execution.execution_id));
    end if;
    if x.queue_job_id is distinct from start_execution.job_id
       or x.status not in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING') then
        return query select x.status, x.lease_epoch, x.current_step,
                            (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                            x.definition_fp::text;
        return;
    end if;
    v_from := x.status;
    update pgbatch.job_execution e
       set status = case when x.status = 'STARTING' then 'STARTED' else x.status end,
           lease_owner = v_owner, lease_boot_id = start_execution.boot_id, lease_epoch = e.lease_epoch + 1,
           lease_expires_at = v_lease, start_time = coalesce(e.start_time, pgbatch.now()),
           recovery_count = e.recovery_count + case when x.status = 'STARTING' then 0 else 1 end,
           last_updated = pgbatch.now(), version = e.version + 1
     where e.id = x.id
    returning * into x;
    perform pgbatch._batch_event(x.id, null, case when v_from = 'STARTING' then 'claimed' else 'recovered' end,
                                 v_from, x.status, null, jsonb_build_object('job_id', start_execution.job_id));
    return query select x.status, x.lease_epoch, x.current_step,
                        (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                        x.definition_fp::text;
end
$$;

-- ==== batch/functions/222_batch_finish.sql ====
-- Ends execution `execution_id` (its row locked by the caller) in terminal
-- status `status` (COMPLETED, FAILED, STOPPED, ABANDONED): end_time, exit
-- code and message, lease cleared, steps that had not ended take
-- `step_status` (default: the same status), PENDING approvals EXPIRED, one
-- event `kind`. Returns the status.
create or replace function pgbatch._batch_finish(execution_id bigint, status text, exit_code text,
    exit_message text, kind text, request_id text default null, step_status text default null,
    detail jsonb default null)
returns text
language plpgsql
as $$
declare
    v_from text;
    v_now  timestamptz := pgbatch.now();
begin
    select e.status into v_from from pgbatch.job_execution e where e.id = _batch_finish.execution_id;
    update pgbatch.job_execution e
       set status = _batch_finish.status, exit_code = _batch_finish.exit_code,
           exit_message = coalesce(_batch_finish.exit_message, e.exit_message),
           end_time = coalesce(e.end_time, v_now), lease_owner = null, lease_boot_id = null,
           lease_expires_at = null, last_updated = v_now, version = e.version + 1
     where e.id = _batch_finish.execution_id;
    update pgbatch.step_execution s
       set status = coalesce(_batch_finish.step_status, _batch_finish.status),
           exit_code = coalesce(_batch_finish.step_status, _batch_finish.status),
           end_time = coalesce(s.end_time, v_now), last_updated = v_now, version = s.version + 1
     where s.job_execution_id = _batch_finish.execution_id
       and (s.status in ('STARTING', 'STARTED', 'PAUSED', 'UNKNOWN')
            or (_batch_finish.status = 'ABANDONED' and s.status <> 'COMPLETED'));
    update pgbatch.approval a
       set status = 'EXPIRED', decided_at = v_now
     where a.job_execution_id = _batch_finish.execution_id and a.status = 'PENDING';
    perform pgbatch._batch_event(_batch_finish.execution_id, null, _batch_finish.kind, v_from,
                                 _batch_finish.status, _batch_finish.request_id, _batch_finish.detail);
    return _batch_finish.status;
end
$$;

-- ==== batch/functions/223_start_step.sql ====
-- §4.1 step start, by the worker holding work item `job_id` of execution
-- `execution_id` (fenced, see _batch_fence). Returns (step_execution_id,
-- action, context, chunk_seq); action is
--   run                    run the step from `context` (the checkpoint) and
--                          commit chunks from `chunk_seq` on: the STARTED or
--                          PAUSED row of this execution is reused (resume,
--                          recovery, hand-off), or a new row is inserted with
--                          the context of the instance's last execution of the
--                          step when that ended FAILED or STOPPED (restart from
--                          checkpoint), empty otherwise
--   skip                   the step COMPLETED in an earlier execution of the
--                          instance (and not allow_start_if_complete), or was
--                          ABANDONED: go on with the next step
--   completed              the same, for the last step: the execution is now
--                          COMPLETED (ack the work item)
--   stopped                a stop was requested: the execution is now STOPPED
--                          (ack the work item)
--   start_limit_exceeded   the step started start_limit times over the
--                          instance's executions: the execution is now FAILED,
--                          exit START_LIMIT_EXCEEDED (StartLimitExceededError)
--   failed                 the step's last execution is UNKNOWN: the execution
--                          is now FAILED, exit STEP_UNKNOWN
-- InvalidExecutionState (PB048) for a step the definition does not have, or
-- one that already ended in this execution.
create or replace function pgbatch.start_step(execution_id bigint, step_name text, job_id uuid, claim_token uuid)
returns table (step_execution_id bigint, action text, context jsonb, chunk_seq bigint)
language plpgsql
as $$
#variable_conflict use_column
declare
    x        pgbatch.job_execution;
    v_step   jsonb;
    v_index  integer;
    s        pgbatch.step_execution;
    v_last   pgbatch.step_execution;
    v_starts bigint;
    v_ctx    jsonb := '{}';
    v_seq    bigint;
    v_now    timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_fence(start_step.execution_id, start_step.job_id, start_step.claim_token);
    select d.value, d.ord - 1 into v_step, v_index
      from pgbatch.job_definition jd,
           jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
       and d.value ->> 'name' = start_step.step_name;
    if not found then
        perform pgbatch._raise('PB048', format('job execution %s has no step %s', x.id, to_json(start_step.step_name)));
    end if;
    if x.status = 'STOPPING' then
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped');
        return query select null::bigint, 'stopped'::text, null::jsonb, null::bigint;
        return;
    end if;

    select * into s from pgbatch.step_execution se
     where se.job_execution_id = x.id and se.step_name = start_step.step_name for update;
    if found then
        if s.status not in ('STARTED', 'PAUSED') then
            perform pgbatch._raise('PB048', format('step %s of job execution %s is %s and cannot start again',
                                                   to_json(s.step_name), x.id, s.status));
        end if;
        if s.status = 'PAUSED' then
            update pgbatch.step_execution se set status = 'STARTED', last_updated = v_now, version = se.version + 1
             where se.id = s.id;
        end if;
        update pgbatch.job_execution e set current_step = s.step_name where e.id = x.id;
        return query select s.id, 'run'::text, c.context, c.chunk_seq
                       from pgbatch.step_execution_context c where c.step_execution_id = s.id;
        return;
    end if;

    select se.* into v_last
      from pgbatch.step_execution se join pgbatch.job_execution e on e.id = se.job_execution_id
     where e.instance_id = x.instance_id and se.step_name = start_step.step_name
     order by se.id desc limit 1;
    select count(*) into v_starts
      from pgbatch.step_execution se join pgbatch.job_execution e on e.id = se.job_execution_id
     where e.instance_id = x.instance_id and se.step_name = start_step.step_name;
    if v_last.id is not null then
        if v_last.status = 'ABANDONED'
           or (v_last.status = 'COMPLETED' and not coalesce((v_step ->> 'allow_start_if_complete')::boolean, false)) then
            if jsonb_array_length((select jd.definition -> 'steps' from pgbatch.job_definition jd
                                    where jd.fingerprint = x.definition_fp
                                      and jd.job_name = (select i.job_name from pgbatch.job_instance i
                                                          where i.id = x.instance_id))) = v_index + 1 then
                perform pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                              detail => jsonb_build_object('skipped', start_step.step_name));
                return query select v_last.id, 'completed'::text, null::jsonb, null::bigint;
                return;
            end if;
            return query select v_last.id, 'skip'::text, null::jsonb, null::bigint;
            return;
        end if;
        if v_last.status = 'UNKNOWN' then
            perform pgbatch._batch_finish(x.id, 'FAILED', 'STEP_UNKNOWN',
                                          format('step %s ended UNKNOWN in execution %s', v_last.step_name,
                                                 v_last.job_execution_id), 'failed');
            return query select null::bigint, 'failed'::text, null::jsonb, null::bigint;
            return;
        end if;
        if v_last.status in ('FAILED', 'STOPPED') then
            select c.context into v_ctx from pgbatch.step_execution_context c where c.step_execution_id = v_last.id;
        end if;
    end if;
    if v_step ? 'start_limit' and v_starts >= (v_step ->> 'start_limit')::bigint then
        perform pgbatch._batch_finish(x.id, 'FAILED', 'START_LIMIT_EXCEEDED',
                                      format('step %s was started %s times (start_limit %s)', start_step.step_name,
                                             v_starts, v_step ->> 'start_limit'), 'failed');
        return query select null::bigint, 'start_limit_exceeded'::text, null::jsonb, null::bigint;
        return;
    end if;

    insert into pgbatch.step_execution (job_execution_id, step_name, step_index, status, start_time, last_updated)
    values (x.id, start_step.step_name, v_index, 'STARTED', v_now, v_now)
    returning * into s;
    insert into pgbatch.step_execution_context (step_execution_id, context, chunk_seq)
    values (s.id, coalesce(v_ctx, '{}'), 0);
    update pgbatch.job_execution e
       set current_step = s.step_name, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'step_started', x.status, x.status, null,
                                 jsonb_build_object('step', s.step_name, 'restart_of', v_last.id));
    return query select s.id, 'run'::text, coalesce(v_ctx, '{}'), 0::bigint;
end
$$;

-- ==== batch/functions/224_commit_chunk.sql ====
-- §4.2 chunk commit, the last call of the chunk's transaction (the writer's
-- same-database writes come before it, in the same transaction). Fenced by
-- the queue claim: locks the work item's row, checks `claim_token` and
-- extends its lease to now + `lease` (as fence_claim, durable commit), then
-- checks the execution (FencedOut, PB046, see _batch_fence). Then, when the
-- step's committed chunk count is `expected_seq`: stores `context` as the
-- checkpoint, chunk_seq + 1, adds the counters (commit_count + 1) and returns
-- applied = true with the new chunk_seq. When chunk_seq is already
-- `expected_seq` + 1, this chunk committed before (a retry after a commit
-- whose outcome was lost): nothing changes, applied = false; the caller
-- rolls its own writes back and continues after that chunk. Any other
-- chunk_seq, or a step that is not STARTED: InvalidExecutionState (PB048).
-- Also returns the execution's status and whether a stop or pause was
-- requested (the read-back the worker acts on at this boundary). Counters
-- must be >= 0 (InvalidArgument, PB007).
create or replace function pgbatch.commit_chunk(step_execution_id bigint, job_id uuid, claim_token uuid,
    expected_seq bigint, context jsonb,
    read_count bigint default 0, write_count bigint default 0, filter_count bigint default 0,
    read_skip_count bigint default 0, process_skip_count bigint default 0, write_skip_count bigint default 0,
    rollback_count bigint default 0, lease interval default '30 seconds')
returns table (chunk_seq bigint, applied boolean, status text, stop_requested boolean, pause_requested boolean)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_exec  bigint;
    v_step  text;
    v_seq   bigint;
    v_lease timestamptz;
    x       pgbatch.job_execution;
begin
    if least(commit_chunk.read_count, commit_chunk.write_count, commit_chunk.filter_count,
             commit_chunk.read_skip_count, commit_chunk.process_skip_count, commit_chunk.write_skip_count,
             commit_chunk.rollback_count) < 0 or commit_chunk.expected_seq < 0 then
        perform pgbatch._raise('PB007', 'invalid argument: counters and expected_seq must be >= 0');
    end if;
    if commit_chunk.context is null or jsonb_typeof(commit_chunk.context) <> 'object' then
        perform pgbatch._raise('PB007', 'invalid argument: context must be a JSON object');
    end if;
    select se.job_execution_id into v_exec from pgbatch.step_execution se where se.id = commit_chunk.step_execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('step execution %s not found', commit_chunk.step_execution_id));
    end if;
    select f.expires_at into v_lease from pgbatch.fence_claim(commit_chunk.job_id, commit_chunk.claim_token,
                                                              commit_chunk.lease) f;
    x := pgbatch._batch_fence(v_exec, commit_chunk.job_id, commit_chunk.claim_token);
    select se.status into v_step from pgbatch.step_execution se where se.id = commit_chunk.step_execution_id for update;
    select c.chunk_seq into v_seq from pgbatch.step_execution_context c
     where c.step_execution_id = commit_chunk.step_execution_id for update;
    if v_step <> 'STARTED' then
        perform pgbatch._raise('PB048', format('step execution %s is %s, not STARTED', commit_chunk.step_execution_id, v_step));
    end if;
    update pgbatch.job_execution e
       set lease_expires_at = v_lease, last_updated = pgbatch.now()
     where e.id = x.id;
    if v_seq = commit_chunk.expected_seq + 1 then
        return query select v_seq, false, x.status, x.stop_requested_at is not null, x.pause_requested_at is not null;
        return;
    end if;
    if v_seq <> commit_chunk.expected_seq then
        perform pgbatch._raise('PB048', format('step execution %s has %s committed chunks, not %s',
                                               commit_chunk.step_execution_id, v_seq, commit_chunk.expected_seq));
    end if;
    update pgbatch.step_execution_context c
       set context = commit_chunk.context, chunk_seq = c.chunk_seq + 1
     where c.step_execution_id = commit_chunk.step_execution_id;
    update pgbatch.step_execution se
       set commit_count = se.commit_count + 1,
           read_count = se.read_count + commit_chunk.read_count,
           write_count = se.write_count + commit_chunk.write_count,
           filter_count = se.filter_count + commit_chunk.filter_count,
           read_skip_count = se.read_skip_count + commit_chunk.read_skip_count,
           process_skip_count = se.process_skip_count + commit_chunk.process_skip_count,
           write_skip_count = se.write_skip_count + commit_chunk.write_skip_count,
           rollback_count = se.rollback_count + commit_chunk.rollback_count,
           last_updated = pgbatch.now(), version = se.version + 1
     where se.id = commit_chunk.step_execution_id;
    return query select v_seq + 1, true, x.status, x.stop_requested_at is not null, x.pause_requested_at is not null;
end
$$;

-- ==== batch/functions/225_end_step.sql ====
-- Ends step execution `step_execution_id` (STARTED) as `status` (COMPLETED,
-- FAILED or STOPPED), by the worker holding work item `job_id` (fenced, see
-- _batch_fence), with its exit code (default: the status), message and,
-- when given, a last `context` and job `job_context`. Then, in the same
-- transaction, the job:
--   FAILED / STOPPED step   the execution ends FAILED / STOPPED
--   COMPLETED, last step    the execution ends COMPLETED (also when a stop was
--                           requested: the work is done, T8b)
--   COMPLETED, stop asked   the execution ends STOPPED (work remains, T8)
--   COMPLETED, more steps   hand-off: the work item is acked with effects
--                           that enqueue the next step's work item; the
--                           execution is STARTING until a worker claims it
-- In every case the work item is acked here, unless `ack` is false: then the
-- caller acks it in this transaction with the returned `effects` (a worker's
-- own settler does, so it knows the job is settled). Returns (job_status,
-- next_step, next_job_id, effects). InvalidExecutionState (PB048) for a step
-- that is not STARTED; InvalidArgument (PB007) for another status.
create or replace function pgbatch.end_step(step_execution_id bigint, job_id uuid, claim_token uuid,
    status text, exit_code text default null, exit_message text default null,
    context jsonb default null, job_context jsonb default null, ack boolean default true)
returns table (job_status text, next_step text, next_job_id uuid, effects jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    s       pgbatch.step_execution;
    x       pgbatch.job_execution;
    v_next  text;
    v_id    uuid;
    v_now   timestamptz := pgbatch.now();
    v_final text;
    v_fx    jsonb;
begin
    if end_step.status is null or end_step.status not in ('COMPLETED', 'FAILED', 'STOPPED') then
        perform pgbatch._raise('PB007', format('invalid argument: a step ends COMPLETED, FAILED or STOPPED, not %s',
                                               coalesce(end_step.status, 'NULL')));
    end if;
    select * into s from pgbatch.step_execution se where se.id = end_step.step_execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('step execution %s not found', end_step.step_execution_id));
    end if;
    x := pgbatch._batch_fence(s.job_execution_id, end_step.job_id, end_step.claim_token);
    select * into s from pgbatch.step_execution se where se.id = end_step.step_execution_id for update;
    if s.status <> 'STARTED' then
        perform pgbatch._raise('PB048', format('step execution %s is %s, not STARTED', s.id, s.status));
    end if;
    update pgbatch.step_execution se
       set status = end_step.status, exit_code = coalesce(end_step.exit_code, end_step.status),
           exit_message = end_step.exit_message, end_time = v_now, last_updated = v_now, version = se.version + 1
     where se.id = s.id;
    if end_step.context is not null then
        update pgbatch.step_execution_context c set context = end_step.context where c.step_execution_id = s.id;
    end if;
    if end_step.job_context is not null then
        update pgbatch.job_execution_context c set context = end_step.job_context where c.job_execution_id = x.id;
    end if;

    select d.value ->> 'name' into v_next
      from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
       and d.ord = s.step_index + 2;

    if end_step.status in ('FAILED', 'STOPPED') then
        v_final := pgbatch._batch_finish(x.id, end_step.status, coalesce(end_step.exit_code, end_step.status),
                                         end_step.exit_message, lower(end_step.status),
                                         detail => jsonb_build_object('step', s.step_name));
    elsif v_next is null then
        v_final := pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                         detail => jsonb_build_object('step', s.step_name));
    elsif x.status = 'STOPPING' then
        v_final := pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped',
                                         detail => jsonb_build_object('step', s.step_name, 'next_step', v_next));
    end if;
    if v_final is not null then
        if end_step.ack then
            perform pgbatch.ack(end_step.job_id, end_step.claim_token);
        end if;
        return query select v_final, null::text, null::uuid, null::jsonb;
        return;
    end if;

    v_id := pgbatch.uuid_v7();
    v_fx := jsonb_build_object('enqueue', jsonb_build_array(
        jsonb_build_object('queue', x.queue, 'id', v_id,
                           'payload', jsonb_build_object('kind', 'batch_step', 'execution_id', x.id, 'step', v_next))));
    if end_step.ack then
        perform pgbatch.ack(end_step.job_id, end_step.claim_token, v_fx);
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', queue_job_id = v_id, current_step = v_next, lease_owner = null,
           lease_boot_id = null, lease_expires_at = null, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'step_handoff', x.status, 'STARTING', null,
                                 jsonb_build_object('step', s.step_name, 'next_step', v_next, 'job_id', v_id));
    return query select 'STARTING'::text, v_next, v_id, v_fx;
end
$$;

-- ==== batch/functions/226_batch_lock_operator.sql ====
-- Locks an execution for an operator call, in the workers' lock order: its
-- current work item's queue row first (if it still exists), then the
-- execution's row; retried when the work item changed in between.
-- JobExecutionNotFound (PB047) for an unknown id. Returns the locked row.
create or replace function pgbatch._batch_lock_operator(execution_id bigint)
returns pgbatch.job_execution
language plpgsql
as $$
declare
    x     pgbatch.job_execution;
    v_job uuid;
begin
    for i in 1 .. 10 loop
        select e.queue_job_id into v_job from pgbatch.job_execution e where e.id = _batch_lock_operator.execution_id;
        if not found then
            perform pgbatch._raise('PB047', format('job execution %s not found', _batch_lock_operator.execution_id));
        end if;
        perform 1 from pgbatch.job j where j.id = v_job for update;
        select * into x from pgbatch.job_execution e where e.id = _batch_lock_operator.execution_id for update;
        if x.queue_job_id is not distinct from v_job then
            return x;
        end if;
    end loop;
    return x;
end
$$;

-- ==== batch/functions/227_batch_prior_result.sql ====
-- The (applied, status) an earlier operator call with the same `request_id`
-- returned for execution `execution_id`, as stored in its event, or no row.
create or replace function pgbatch._batch_prior_result(execution_id bigint, kind text, request_id text)
returns table (applied boolean, status text)
language sql
stable
as $$
    select true, e.to_status from pgbatch.execution_event e
     where e.job_execution_id = _batch_prior_result.execution_id and e.kind = _batch_prior_result.kind
       and e.request_id = _batch_prior_result.request_id
$$;

-- ==== batch/functions/230_stop_execution.sql ====
-- T6/T7 stop (BATCH.md §3, §5). STARTED or PAUSING -> STOPPING
-- (stop_requested_at set; the worker sees it at its next chunk commit, step
-- start or job end); STARTING, PAUSED, AWAITING_APPROVAL -> STOPPED at once
-- (exit STOPPED, PENDING approvals EXPIRED, the waiting work item
-- cancelled). Returns (applied, status): applied = false, changing nothing,
-- when the execution is in any other status (it already stopped or ended).
-- A repeated call with the same `request_id` returns the first one's result.
-- JobExecutionNotFound (PB047).
create or replace function pgbatch.stop_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x     pgbatch.job_execution;
    v_now timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_lock_operator(stop_execution.execution_id);
    if stop_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'stop', stop_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('STARTED', 'PAUSING') then
        update pgbatch.job_execution e
           set status = 'STOPPING', stop_requested_at = v_now, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, null, 'stop', x.status, 'STOPPING', stop_execution.request_id);
        return query select true, 'STOPPING'::text;
    elsif x.status in ('STARTING', 'PAUSED', 'AWAITING_APPROVAL') then
        update pgbatch.job_execution e set stop_requested_at = v_now where e.id = x.id;
        if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
            perform pgbatch.cancel_job(x.queue_job_id);
        end if;
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stop', stop_execution.request_id);
        return query select true, 'STOPPED'::text;
    else
        return query select false, x.status;
    end if;
end
$$;

-- ==== batch/functions/231_abandon_execution.sql ====
-- T17 abandon (BATCH.md §3, §5): an operator gives up on an execution that
-- is not running. STOPPED, FAILED, UNKNOWN, PAUSED, AWAITING_APPROVAL ->
-- ABANDONED; STARTED, STOPPING, PAUSING only when the work item's lease has
-- expired (its worker is gone), else JobExecutionAlreadyRunningError
-- (PB044). Steps that did not complete become ABANDONED (a restart skips
-- them, and the instance cannot be restarted: JobRestartError abandoned),
-- PENDING approvals EXPIRED, a waiting work item is cancelled. Returns
-- (applied, status): applied = false, changing nothing, for STARTING,
-- COMPLETED and ABANDONED. A repeated call with the same `request_id`
-- returns the first one's result. JobExecutionNotFound (PB047).
create or replace function pgbatch.abandon_execution(execution_id bigint, request_id text default null)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x       pgbatch.job_execution;
    v_lease timestamptz;
begin
    x := pgbatch._batch_lock_operator(abandon_execution.execution_id);
    if abandon_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'abandon', abandon_execution.request_id);
        if found then
            return;
        end if;
    end if;
    if x.status in ('STARTED', 'STOPPING', 'PAUSING') then
        select j.lease_expires_at into v_lease from pgbatch.job j where j.id = x.queue_job_id;
        if v_lease is not null and v_lease >= pgbatch.now() then
            perform pgbatch._raise('PB044', format('job execution %s is %s and its worker holds a live lease until %s',
                                                   x.id, x.status, v_lease),
                                   'stop_execution() it, or abandon it after the lease has expired');
        end if;
    elsif x.status not in ('STOPPED', 'FAILED', 'UNKNOWN', 'PAUSED', 'AWAITING_APPROVAL') then
        return query select false, x.status;
        return;
    end if;
    if x.queue_job_id is not null and exists (select 1 from pgbatch.job j where j.id = x.queue_job_id) then
        perform pgbatch.cancel_job(x.queue_job_id);
    end if;
    perform pgbatch._batch_finish(x.id, 'ABANDONED', 'ABANDONED', null, 'abandon', abandon_execution.request_id);
    return query select true, 'ABANDONED'::text;
end
$$;

-- ==== batch/functions/240_job_executions.sql ====
-- History for operators and the dashboard: the executions of job `job_name`
-- (every job when NULL) in `status` (any when NULL), newest first, at most
-- `limit` of them (1 to 10000, else InvalidArgument, PB007). The columns
-- `job` and `execution_status` are the job name and the status.
create or replace function pgbatch.job_executions(job_name text default null, status text default null,
    "limit" integer default 100)
returns table (execution_id bigint, instance_id bigint, job text, job_key text, execution_status text,
               exit_code text, exit_message text, current_step text, params jsonb,
               create_time timestamptz, start_time timestamptz, end_time timestamptz,
               resume_count integer, recovery_count integer, handoff_count integer)
language plpgsql
stable
as $$
begin
    if job_executions."limit" is null or job_executions."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    return query
    select x.id, x.instance_id, i.job_name, i.job_key::text, x.status, x.exit_code, x.exit_message,
           x.current_step, x.params, x.create_time, x.start_time, x.end_time,
           x.resume_count, x.recovery_count, x.handoff_count
      from pgbatch.job_execution x join pgbatch.job_instance i on i.id = x.instance_id
     where (job_executions.job_name is null or i.job_name = job_executions.job_name)
       and (job_executions.status is null or x.status = job_executions.status)
     order by x.id desc
     limit job_executions."limit";
end
$$;

-- ==== batch/functions/241_step_executions.sql ====
-- History: the step executions of execution `execution_id` in step order,
-- with their counters and checkpoint. JobExecutionNotFound (PB047) for an
-- unknown execution.
create or replace function pgbatch.step_executions(execution_id bigint)
returns table (step_execution_id bigint, step_name text, step_index integer, status text, exit_code text,
               exit_message text, read_count bigint, write_count bigint, filter_count bigint,
               commit_count bigint, rollback_count bigint, read_skip_count bigint, process_skip_count bigint,
               write_skip_count bigint, chunk_seq bigint, context jsonb,
               start_time timestamptz, end_time timestamptz)
language plpgsql
stable
as $$
begin
    perform 1 from pgbatch.job_execution x where x.id = step_executions.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', step_executions.execution_id));
    end if;
    return query
    select s.id, s.step_name, s.step_index, s.status, s.exit_code, s.exit_message, s.read_count,
           s.write_count, s.filter_count, s.commit_count, s.rollback_count, s.read_skip_count,
           s.process_skip_count, s.write_skip_count, c.chunk_seq, c.context, s.start_time, s.end_time
      from pgbatch.step_execution s join pgbatch.step_execution_context c on c.step_execution_id = s.id
     where s.job_execution_id = step_executions.execution_id
     order by s.step_index, s.id;
end
$$;

-- ==== batch/functions/242_execution_events.sql ====
-- History: the events of execution `execution_id`, oldest first.
-- JobExecutionNotFound (PB047) for an unknown execution.
create or replace function pgbatch.execution_events(execution_id bigint)
returns table (event_id bigint, step_execution_id bigint, at timestamptz, kind text, from_status text,
               to_status text, actor text, request_id text, detail jsonb)
language plpgsql
stable
as $$
begin
    perform 1 from pgbatch.job_execution x where x.id = execution_events.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', execution_events.execution_id));
    end if;
    return query
    select e.id, e.step_execution_id, e.at, e.kind, e.from_status, e.to_status, e.actor, e.request_id, e.detail
      from pgbatch.execution_event e
     where e.job_execution_id = execution_events.execution_id
     order by e.id;
end
$$;

-- ==== batch/functions/290_batch_invariant_violations.sql ====
-- The batch invariants of BATCH.md §8 that the rows can show, as one row per
-- violation (invariant, detail); no row when all hold. Tests call it after
-- every batch test.
--   I1  at most one active execution per instance
--   I2  no execution after a COMPLETED or ABANDONED one of the same instance;
--       a terminal execution's events never leave the terminal status (except
--       FAILED/STOPPED -> ABANDONED); a terminal execution has no running step
--   I4  chunk_seq = commit_count of every step execution
--   I5  a running execution (STARTING, STARTED, STOPPING, PAUSING) has a live
--       work item that is its current one; a terminal one has none live
--   I6  step rows: at most one per step of the definition
--   I7  exactly one `launched` event per execution, first; the status the
--       last status-changing event reports is the execution's status
create or replace function pgbatch._batch_invariant_violations()
returns table (invariant text, detail text)
language sql
stable
as $$
    select 'I1', format('instance %s has %s active executions', x.instance_id, count(*))
      from pgbatch.job_execution x
     where x.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING', 'PAUSED', 'AWAITING_APPROVAL', 'UNKNOWN')
     group by x.instance_id having count(*) > 1
    union all
    select 'I2', format('execution %s follows execution %s (%s) of instance %s', l.id, f.id, f.status, f.instance_id)
      from pgbatch.job_execution f join pgbatch.job_execution l on l.instance_id = f.instance_id and l.id > f.id
     where f.status in ('COMPLETED', 'ABANDONED')
    union all
    select 'I2', format('execution %s: event %s %s -> %s after it was terminal', ev.job_execution_id, ev.id,
                        ev.from_status, ev.to_status)
      from pgbatch.execution_event ev
     where ev.from_status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')
       and not (ev.from_status in ('FAILED', 'STOPPED') and ev.to_status = 'ABANDONED')
    union all
    select 'I2', format('execution %s is %s but step %s is %s', x.id, x.status, s.step_name, s.status)
      from pgbatch.job_execution x join pgbatch.step_execution s on s.job_execution_id = x.id
     where x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED')
       and s.status in ('STARTING', 'STARTED', 'PAUSED', 'UNKNOWN')
    union all
    select 'I4', format('step execution %s: chunk_seq %s, commit_count %s', s.id, c.chunk_seq, s.commit_count)
      from pgbatch.step_execution s join pgbatch.step_execution_context c on c.step_execution_id = s.id
     where c.chunk_seq <> s.commit_count
    union all
    select 'I4', format('step execution %s has no context row', s.id)
      from pgbatch.step_execution s
     where not exists (select 1 from pgbatch.step_execution_context c where c.step_execution_id = s.id)
    union all
    select 'I5', format('execution %s is %s without a live current work item (%s)', x.id, x.status, x.queue_job_id)
      from pgbatch.job_execution x
     where x.status in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING')
       and not exists (select 1 from pgbatch.job j where j.id = x.queue_job_id
                          and j.payload ->> 'kind' = 'batch_step'
                          and (j.payload ->> 'execution_id')::bigint = x.id)
    union all
    select 'I5', format('execution %s is %s but its work item %s is live and not cancelled', x.id, x.status, j.id)
      from pgbatch.job_execution x join pgbatch.job j on j.id = x.queue_job_id
     where x.status in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED') and not j.cancel_requested
    union all
    select 'I6', format('execution %s has %s step rows for %s steps', x.id, count(s.id),
                        jsonb_array_length(min(d.definition::text)::jsonb -> 'steps'))
      from pgbatch.job_execution x
      join pgbatch.job_instance i on i.id = x.instance_id
      join pgbatch.job_definition d on d.job_name = i.job_name and d.fingerprint = x.definition_fp
      join pgbatch.step_execution s on s.job_execution_id = x.id
     group by x.id having count(s.id) > jsonb_array_length(min(d.definition::text)::jsonb -> 'steps')
    union all
    select 'I7', format('execution %s has %s launched events', x.id,
                        (select count(*) from pgbatch.execution_event e where e.job_execution_id = x.id and e.kind = 'launched'))
      from pgbatch.job_execution x
     where (select count(*) from pgbatch.execution_event e where e.job_execution_id = x.id and e.kind = 'launched') <> 1
        or (select e.kind from pgbatch.execution_event e where e.job_execution_id = x.id order by e.id limit 1) <> 'launched'
    union all
    select 'I7', format('execution %s is %s but its last status event says %s', x.id, x.status, le.to_status)
      from pgbatch.job_execution x
      cross join lateral (select e.to_status from pgbatch.execution_event e
                           where e.job_execution_id = x.id and e.to_status is not null
                           order by e.id desc limit 1) le
     where le.to_status <> x.status
$$;

-- ==== batch/privileges/030_batch_access.sql ====
-- Who may execute the public functions of sql/batch (docs/roles.md):
-- producers compute keys and launch batch jobs; workers register
-- definitions and run steps; admins make every operator call.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('canonical_params',   'producer', false),
    ('job_key',            'producer', false),
    ('next_instance',      'producer', true),
    ('launch_job',         'producer', true),
    ('register_job',       'worker',   true),
    ('start_execution',    'worker',   true),
    ('start_step',         'worker',   true),
    ('commit_chunk',       'worker',   true),
    ('end_step',           'worker',   true),
    ('restart_execution',  'admin',    true),
    ('stop_execution',     'admin',    true),
    ('abandon_execution',  'admin',    true),
    ('job_executions',     'admin',    true),
    ('step_executions',    'admin',    true),
    ('execution_events',   'admin',    true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
