-- pgbatch migration 0014_schedules: the scheduler (docs/schedules.md): the
-- schedule table and the fire ledger, the tick (tick_schedules), the
-- lifecycle functions (create_schedule, update_schedule, delete_schedule,
-- pause_schedule, resume_schedule, trigger_schedule, backfill_schedule) and
-- the reads (schedules, schedule_fires).
-- FROZEN: never edit this file after release; 0014_schedules.py pins its sha256.

-- ==== schedule/schema/300_schedules.sql ====
-- The scheduler's tables (docs/schedules.md, BATCH.md §9.1): persisted
-- schedules and the fire ledger. A schedule says WHEN (kind cron, interval,
-- once or manual) and WHAT (a queue job: queue + payload template, or a batch
-- job launch: job_name + parameter template). Its watermark last_fire_at is
-- the latest occurrence decided; next_due_at is the first occurrence after
-- it (index-driven polling by pgbatch.tick_schedules). The ledger holds one
-- row per decided fire; its primary key (schedule_id, source, fire_at) makes
-- a fire happen at most once.
create table pgbatch.schedule (
    id                text        primary key,
    kind              text        not null
                                  constraint schedule_kind_check
                                  check (kind in ('cron', 'interval', 'once', 'manual')),
    cron_expr         text,
    tz                text        not null default 'UTC',
    every             interval,                           -- interval: anchor + k * every, UTC
    anchor            timestamptz,
    once_at           timestamptz,
    target            text        not null
                                  constraint schedule_target_check check (target in ('queue', 'batch')),
    queue             text,                               -- target 'queue'
    payload           jsonb,
    job_name          text,                               -- target 'batch'
    params            jsonb,
    misfire_threshold interval    not null default '60 seconds',
    catchup_window    interval,                           -- null: no catch-up beyond the threshold
    overlap_policy    text        not null default 'allow'
                                  constraint schedule_overlap_policy_check
                                  check (overlap_policy in ('allow', 'skip', 'queue')),
    enabled           boolean     not null default true,
    paused_at         timestamptz,
    effective_from    timestamptz not null,               -- exclusive lower bound of occurrences
    last_fire_at      timestamptz,                        -- WATERMARK: latest occurrence decided
    next_due_at       timestamptz,                        -- first occurrence after the watermark
    coalesced_total   bigint      not null default 0,     -- missed occurrences folded, all time
    last_outcome      text,
    last_decided_at   timestamptz,
    definition_hash   char(64)    not null,               -- of the timing fields (kind, cron, tz, every, anchor, once_at)
    version           bigint      not null default 0,
    created_at        timestamptz not null,
    updated_at        timestamptz not null,
    constraint schedule_cron_check check ((kind = 'cron') = (cron_expr is not null)),
    constraint schedule_interval_check check ((kind = 'interval') = (every is not null and anchor is not null)),
    constraint schedule_once_check check ((kind = 'once') = (once_at is not null)),
    constraint schedule_queue_check check ((target = 'queue') = (queue is not null and payload is not null)),
    constraint schedule_batch_check check ((target = 'batch') = (job_name is not null and params is not null))
);
-- The tick: due enabled schedules in due order.
create index schedule_due on pgbatch.schedule (next_due_at) where enabled;

create table pgbatch.schedule_fire (
    schedule_id      text        not null
                                 constraint schedule_fire_schedule_id_fkey
                                 references pgbatch.schedule on delete cascade,
    source           text        not null
                                 constraint schedule_fire_source_check
                                 check (source in ('schedule', 'manual', 'backfill')),
    fire_at          timestamptz not null,               -- the occurrence (UTC): the fire's identity
    outcome          text        not null
                                 constraint schedule_fire_outcome_check
                                 check (outcome in ('fired', 'skipped_late', 'skipped_overlap', 'failed')),
    coalesced_count  integer     not null default 0,     -- older missed occurrences folded into this one
    coalesced_capped boolean     not null default false, -- the count stopped at the scan cap: "at least"
    job_id           uuid,                               -- the queue job enqueued (target 'queue')
    job_execution_id bigint,                             -- the execution launched (target 'batch')
    error            text,                               -- outcome 'failed': why the launch was refused
    request_id       text,                               -- trigger_schedule's idempotency key
    node_id          text,
    decided_at       timestamptz not null,
    primary key (schedule_id, source, fire_at)
);
create unique index schedule_fire_request on pgbatch.schedule_fire (schedule_id, request_id)
    where request_id is not null;
create index schedule_fire_history on pgbatch.schedule_fire (schedule_id, decided_at desc);

-- What schedules() returns: a schedule and its state.
create type pgbatch.schedule_info as (
    schedule_id       text,
    kind              text,
    cron_expr         text,
    tz                text,
    every             interval,
    anchor            timestamptz,
    once_at           timestamptz,
    target            text,
    queue             text,
    payload           jsonb,
    job_name          text,
    params            jsonb,
    misfire_threshold interval,
    catchup_window    interval,
    overlap_policy    text,
    enabled           boolean,
    paused_at         timestamptz,
    effective_from    timestamptz,
    last_fire_at      timestamptz,
    next_due_at       timestamptz,
    coalesced_total   bigint,
    last_outcome      text,
    last_decided_at   timestamptz,
    version           bigint,
    created_at        timestamptz,
    updated_at        timestamptz
);

-- What the tick, trigger_schedule, backfill_schedule and schedule_fires
-- return: one fire decision, and (schedule_fires) the state of its run:
-- pending, running, succeeded, failed, cancelled, or NULL when nothing ran.
create type pgbatch.schedule_fire_info as (
    schedule_id      text,
    source           text,
    fire_at          timestamptz,
    outcome          text,
    coalesced_count  integer,
    coalesced_capped boolean,
    job_id           uuid,
    job_execution_id bigint,
    error            text,
    request_id       text,
    node_id          text,
    decided_at       timestamptz,
    run_status       text
);

-- ==== schedule/functions/300_schedule_next_after.sql ====
-- The first occurrence of schedule `s` strictly after `after`, or NULL when
-- there is none (a manual schedule, a once schedule whose instant has passed,
-- a cron expression with no occurrence before 2200). Cron: in the schedule's
-- time zone (docs/schedules.md); interval: anchor + k * every in UTC
-- arithmetic (every as a fixed number of seconds, k >= 0); once: once_at.
create or replace function pgbatch._schedule_next_after(s pgbatch.schedule, after timestamptz)
returns timestamptz
language plpgsql
stable
as $$
declare
    v_every numeric;
    v_k     numeric;
begin
    if s.kind = 'cron' then
        return pgbatch._cron_next_after(pgbatch.cron_parse(s.cron_expr), s.tz, after);
    elsif s.kind = 'interval' then
        if after < s.anchor then
            return s.anchor;
        end if;
        v_every := extract(epoch from s.every);
        v_k := floor((extract(epoch from after) - extract(epoch from s.anchor)) / v_every) + 1;
        return s.anchor + (v_k * v_every)::double precision * interval '1 second';
    elsif s.kind = 'once' then
        return case when s.once_at > after then s.once_at end;
    end if;
    return null;
end
$$;

-- ==== schedule/functions/301_schedule_missed.sql ====
-- The occurrences of schedule `s` in (after, until], as the tick decides a
-- fire (BATCH.md §9.2): the latest one (NULL if none), how many there are,
-- and whether the count stopped at the scan cap of 1000 (then `occurrences`
-- means "at least 1000"; `latest` is still exact). Bounded work however far
-- back `after` is: cron through _cron_missed, interval and once directly.
create or replace function pgbatch._schedule_missed(s pgbatch.schedule, after timestamptz,
                                                    until timestamptz,
                                                    out latest timestamptz, out occurrences integer,
                                                    out capped boolean)
language plpgsql
stable
as $$
declare
    v_every numeric;
    v_hi    numeric;
    v_lo    numeric;
    v_n     numeric;
begin
    latest := null;
    occurrences := 0;
    capped := false;
    if until <= after then
        return;
    end if;
    if s.kind = 'cron' then
        select m.latest, m.occurrences, m.capped into latest, occurrences, capped
          from pgbatch._cron_missed(pgbatch.cron_parse(s.cron_expr), s.tz, after, until, 1000) m;
    elsif s.kind = 'interval' then
        if until < s.anchor then
            return;
        end if;
        v_every := extract(epoch from s.every);
        v_hi := floor((extract(epoch from until) - extract(epoch from s.anchor)) / v_every);
        v_lo := case when after < s.anchor then 0
                     else floor((extract(epoch from after) - extract(epoch from s.anchor)) / v_every) + 1 end;
        if v_hi >= v_lo then
            v_n := v_hi - v_lo + 1;
            latest := s.anchor + (v_hi * v_every)::double precision * interval '1 second';
            occurrences := least(v_n, 1000)::integer;
            capped := v_n > 1000;
        end if;
    elsif s.kind = 'once' then
        if s.once_at > after and s.once_at <= until then
            latest := s.once_at;
            occurrences := 1;
        end if;
    end if;
end
$$;

-- ==== schedule/functions/302_schedule_run_status.sql ====
-- The state of the run a fire started: for a queue job (`job_id`) pending,
-- running (claimed), succeeded (done), failed (dead) or cancelled; for a
-- batch execution (`job_execution_id`) pending (STARTING), running (STARTED,
-- STOPPING, PAUSING, PAUSED, AWAITING_APPROVAL, UNKNOWN), succeeded
-- (COMPLETED), failed (FAILED), stopped (STOPPED) or abandoned (ABANDONED).
-- NULL when nothing ran or its record is gone (retention).
create or replace function pgbatch._schedule_run_status(job_id uuid, job_execution_id bigint)
returns text
language plpgsql
stable
as $$
declare
    v_state text;
begin
    if _schedule_run_status.job_execution_id is not null then
        select x.status into v_state from pgbatch.job_execution x
         where x.id = _schedule_run_status.job_execution_id;
        if not found then
            return null;
        end if;
        return case v_state
            when 'STARTING' then 'pending'
            when 'COMPLETED' then 'succeeded'
            when 'FAILED' then 'failed'
            when 'STOPPED' then 'stopped'
            when 'ABANDONED' then 'abandoned'
            else 'running' end;
    end if;
    if _schedule_run_status.job_id is not null then
        select j.state into v_state from pgbatch.job j where j.id = _schedule_run_status.job_id;
        if found then
            return case v_state when 'claimed' then 'running' else 'pending' end;
        end if;
        select a.state into v_state from pgbatch.job_archive a where a.id = _schedule_run_status.job_id;
        return case v_state when 'done' then 'succeeded' when 'dead' then 'failed'
                            when 'cancelled' then 'cancelled' end;
    end if;
    return null;
end
$$;

-- ==== schedule/functions/303_schedule_overlap_active.sql ====
-- Whether a run started by a recent fire of schedule `schedule_id` (any
-- source) is still active: its queue job is live (pending or claimed), or its
-- batch execution has not ended. Looks at the 100 latest fired rows (the
-- overlap policies keep active fires among the latest).
create or replace function pgbatch._schedule_overlap_active(schedule_id text)
returns boolean
language sql
stable
as $$
    select exists (
        select 1
          from (select f.job_id, f.job_execution_id
                  from pgbatch.schedule_fire f
                 where f.schedule_id = _schedule_overlap_active.schedule_id and f.outcome = 'fired'
                 order by f.decided_at desc
                 limit 100) f
         where (f.job_id is not null and exists (select 1 from pgbatch.job j where j.id = f.job_id))
            or (f.job_execution_id is not null
                and exists (select 1 from pgbatch.job_execution x
                             where x.id = f.job_execution_id
                               and x.status not in ('COMPLETED', 'FAILED', 'STOPPED', 'ABANDONED'))))
$$;

-- ==== schedule/functions/304_schedule_launch.sql ====
-- Starts the work of one fire of schedule `s` (in the caller's transaction):
-- target 'queue' enqueues the payload template plus {"schedule": {"id",
-- "source", "fire_at"}} on the schedule's queue, with a job id derived from
-- (schedule, source, fire_at); target 'batch' launches the job with the
-- parameter template plus the identifying parameters schedule (str) and
-- fire_at (datetime), and a request_id derived from the same triple, so the
-- job instance key is one more guard and a retry is idempotent. A refusal of
-- the SQL API (a PB error: a job no longer registered, a payload over the
-- limit, ...) is returned as `error` instead of raised, so one broken
-- schedule never blocks the others; any other error is raised.
create or replace function pgbatch._schedule_launch(s pgbatch.schedule, source text, fire_at timestamptz,
                                                    out job_id uuid, out job_execution_id bigint,
                                                    out error text)
language plpgsql
as $$
declare
    v_key   constant text := s.id || '|' || source || '|'
                             || to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_state text;
    v_msg   text;
begin
    begin
        if s.target = 'queue' then
            job_id := pgbatch.enqueue(
                queue => s.queue,
                payload => s.payload || jsonb_build_object('schedule', jsonb_build_object(
                    'id', s.id, 'source', source,
                    'fire_at', to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                id_override => md5('pgbatch.schedule|' || v_key)::uuid);
        else
            job_execution_id := pgbatch.launch_job(
                job_name => s.job_name,
                params => s.params || jsonb_build_object(
                    'schedule', s.id,
                    'fire_at', jsonb_build_object('type', 'datetime', 'value',
                        to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                request_id => 'schedule|' || v_key);
            update pgbatch.job_execution x
               set schedule_id = s.id, fire_at = _schedule_launch.fire_at
             where x.id = job_execution_id;
        end if;
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
        if left(v_state, 2) <> 'PB' then
            raise;
        end if;
        job_id := null;
        job_execution_id := null;
        error := v_state || ': ' || v_msg;
    end;
end
$$;

-- ==== schedule/functions/305_schedule_fire_info.sql ====
-- A ledger row as schedule_fire_info, with the state of its run.
create or replace function pgbatch._schedule_fire_info(f pgbatch.schedule_fire)
returns pgbatch.schedule_fire_info
language sql
stable
as $$
    select row(f.schedule_id, f.source, f.fire_at, f.outcome, f.coalesced_count, f.coalesced_capped,
               f.job_id, f.job_execution_id, f.error, f.request_id, f.node_id, f.decided_at,
               pgbatch._schedule_run_status(f.job_id, f.job_execution_id))::pgbatch.schedule_fire_info
$$;

-- ==== schedule/functions/306_schedule_record_fire.sql ====
-- Records one decided fire of schedule `s` in the ledger and, for outcome
-- 'fired', starts its work (_schedule_launch) in the same transaction; a
-- refused launch turns the outcome into 'failed' with the error. Returns the
-- row, or NULL when the ledger already holds (schedule, source, fire_at) or
-- the request_id.
create or replace function pgbatch._schedule_record_fire(s pgbatch.schedule, source text, fire_at timestamptz,
                                                         outcome text, coalesced_count integer,
                                                         coalesced_capped boolean, node_id text,
                                                         request_id text, decided_at timestamptz)
returns pgbatch.schedule_fire
language plpgsql
as $$
declare
    v_fire   pgbatch.schedule_fire;
    v_launch record;
begin
    insert into pgbatch.schedule_fire as f
        (schedule_id, source, fire_at, outcome, coalesced_count, coalesced_capped, node_id,
         request_id, decided_at)
    values (s.id, source, fire_at, outcome, coalesced_count, coalesced_capped, node_id,
            request_id, decided_at)
    on conflict do nothing
    returning f.* into v_fire;
    if not found then
        return null;
    end if;
    if v_fire.outcome = 'fired' then
        v_launch := pgbatch._schedule_launch(s, source, fire_at);
        update pgbatch.schedule_fire f
           set job_id = v_launch.job_id, job_execution_id = v_launch.job_execution_id,
               error = v_launch.error,
               outcome = case when v_launch.error is null then 'fired' else 'failed' end
         where f.schedule_id = s.id and f.source = _schedule_record_fire.source
           and f.fire_at = _schedule_record_fire.fire_at
        returning f.* into v_fire;
    end if;
    return v_fire;
end
$$;

-- ==== schedule/functions/307_schedule_checked.sql ====
-- Validates a schedule row before it is stored and returns it with its
-- target and definition hash filled in. Refusals (nothing is
-- changed): InvalidSchedule (PB061) for a bad name, kind, field of another
-- kind, interval (zero, negative, or with months), threshold, window,
-- overlap policy or target; InvalidCron (PB020); InvalidTimeZone (PB021);
-- InvalidTime (PB013) for anchor and once_at; InvalidQueueName (PB005);
-- InvalidPayload (PB006) for a payload template that is not a JSON object;
-- JobNotRegistered (PB042) for a batch job no worker registered;
-- InvalidJobParameters (PB040) for a bad parameter template.
create or replace function pgbatch._schedule_checked(s pgbatch.schedule)
returns pgbatch.schedule
language plpgsql
stable
as $$
begin
    if s.id is null or s.id !~ '^[A-Za-z0-9_][A-Za-z0-9_.:/@+-]*$' or length(s.id) > 200 then
        perform pgbatch._raise('PB061', format('invalid schedule name %s: 1 to 200 characters of letters, '
            'digits and _ . : / @ + -, not starting with a punctuation mark', coalesce(quote_literal(left(s.id, 80)), 'NULL')));
    end if;
    if s.kind is null or s.kind not in ('cron', 'interval', 'once', 'manual') then
        perform pgbatch._raise('PB061', format('schedule %s: invalid kind %s, must be cron, interval, once or manual',
                                               s.id, coalesce(quote_literal(s.kind), 'NULL')));
    end if;
    if (s.cron_expr is not null) <> (s.kind = 'cron') then
        perform pgbatch._raise('PB061', format('schedule %s: a %s schedule %s', s.id, s.kind,
            case when s.kind = 'cron' then 'needs cron_expr' else 'takes no cron_expr' end));
    end if;
    if (s.every is not null) <> (s.kind = 'interval') or (s.anchor is not null) <> (s.kind = 'interval') then
        perform pgbatch._raise('PB061', format('schedule %s: a %s schedule %s', s.id, s.kind,
            case when s.kind = 'interval' then 'needs every' else 'takes no every or anchor' end));
    end if;
    if (s.once_at is not null) <> (s.kind = 'once') then
        perform pgbatch._raise('PB061', format('schedule %s: a %s schedule %s', s.id, s.kind,
            case when s.kind = 'once' then 'needs once_at' else 'takes no once_at' end));
    end if;
    perform pgbatch._check(pgbatch._tz_problem(s.tz));
    if s.kind = 'cron' then
        perform pgbatch.cron_parse(s.cron_expr);
    end if;
    if s.kind = 'interval' then
        if extract(year from s.every) <> 0 or extract(month from s.every) <> 0 then
            perform pgbatch._raise('PB061', format('schedule %s: invalid every %s: months and years have no fixed '
                'length (use a cron schedule for calendar periods)', s.id, quote_literal(s.every::text)));
        end if;
        if extract(epoch from s.every) < 1 then
            perform pgbatch._raise('PB061', format('schedule %s: invalid every %s: must be at least 1 second',
                                                   s.id, quote_literal(s.every::text)));
        end if;
        perform pgbatch._check(pgbatch._cron_time_problem('anchor', s.anchor));
    end if;
    if s.kind = 'once' then
        perform pgbatch._check(pgbatch._cron_time_problem('once_at', s.once_at));
    end if;
    if s.misfire_threshold is null or s.misfire_threshold < interval '0' then
        perform pgbatch._raise('PB061', format('schedule %s: invalid misfire_threshold %s: must be zero or more',
                                               s.id, coalesce(quote_literal(s.misfire_threshold::text), 'NULL')));
    end if;
    if s.catchup_window < interval '0' then
        perform pgbatch._raise('PB061', format('schedule %s: invalid catchup_window %s: must be zero or more '
                                               '(NULL: no catch-up)', s.id, quote_literal(s.catchup_window::text)));
    end if;
    if s.overlap_policy is null or s.overlap_policy not in ('allow', 'skip', 'queue') then
        perform pgbatch._raise('PB061', format('schedule %s: invalid overlap_policy %s, must be allow, skip or queue',
                                               s.id, coalesce(quote_literal(s.overlap_policy), 'NULL')));
    end if;
    if (s.queue is null) = (s.job_name is null) then
        perform pgbatch._raise('PB061', format('schedule %s: give exactly one target: a queue (and payload) '
                                               'or a job_name (and params)', s.id));
    end if;
    if s.queue is not null then
        s.target := 'queue';
        if s.params is not null then
            perform pgbatch._raise('PB061', format('schedule %s: params are for a batch target (job_name); '
                                                   'a queue target takes a payload', s.id));
        end if;
        perform pgbatch._check_queue(s.queue);
        s.payload := coalesce(s.payload, '{}');
        if jsonb_typeof(s.payload) <> 'object' then
            perform pgbatch._raise('PB006', format('schedule %s: invalid payload template: must be a JSON object, '
                                                   'got %s', s.id, jsonb_typeof(s.payload)));
        end if;
    else
        s.target := 'batch';
        if s.payload is not null then
            perform pgbatch._raise('PB061', format('schedule %s: a payload is for a queue target; '
                                                   'a batch target (job_name) takes params', s.id));
        end if;
        if not exists (select 1 from pgbatch.job_definition d where d.job_name = s.job_name) then
            perform pgbatch._raise('PB042', format('job %s is not registered', to_json(s.job_name)),
                                   'a worker registers the jobs it can run (register_job) when it starts');
        end if;
        s.params := coalesce(s.params, '{}');
        if jsonb_typeof(s.params) <> 'object' then
            perform pgbatch._raise('PB040', format('invalid job parameters: the parameter template of schedule %s '
                                                   'must be a JSON object', s.id));
        end if;
        if s.params ? 'schedule' or s.params ? 'fire_at' then
            perform pgbatch._raise('PB040', format('invalid job parameters: schedule %s: "schedule" and "fire_at" '
                                                   'are set by the scheduler', s.id));
        end if;
        perform pgbatch._batch_params(s.params);
    end if;
    s.definition_hash := encode(sha256(convert_to(jsonb_build_array(
        s.kind, s.cron_expr, s.tz, s.every::text,
        to_char(s.anchor at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        to_char(s.once_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'))::text, 'UTF8')), 'hex');
    return s;
end
$$;

-- ==== schedule/functions/308_schedule_info.sql ====
-- A schedule row as schedule_info (what schedules() and the lifecycle
-- functions return).
create or replace function pgbatch._schedule_info(s pgbatch.schedule)
returns pgbatch.schedule_info
language sql
stable
as $$
    select row(s.id, s.kind, s.cron_expr, s.tz, s.every, s.anchor, s.once_at, s.target, s.queue,
               s.payload, s.job_name, s.params, s.misfire_threshold, s.catchup_window,
               s.overlap_policy, s.enabled, s.paused_at, s.effective_from, s.last_fire_at,
               s.next_due_at, s.coalesced_total, s.last_outcome, s.last_decided_at, s.version,
               s.created_at, s.updated_at)::pgbatch.schedule_info
$$;

-- ==== schedule/functions/309_schedule_lock.sql ====
-- Locks schedule `schedule_id` (waiting for a tick that holds it) and returns
-- it, or raises ScheduleNotFound (PB060).
create or replace function pgbatch._schedule_lock(schedule_id text)
returns pgbatch.schedule
language plpgsql
as $$
declare
    s pgbatch.schedule;
begin
    select * into s from pgbatch.schedule x where x.id = _schedule_lock.schedule_id for update;
    if not found then
        perform pgbatch._raise('PB060', format('schedule %s does not exist',
                                               coalesce(to_json(_schedule_lock.schedule_id)::text, 'NULL')));
    end if;
    return s;
end
$$;

-- ==== schedule/functions/310_tick_schedules.sql ====
-- The scheduler's tick (BATCH.md §9.2, docs/schedules.md), one call = one
-- transaction, on every worker node about every second. Locks up to
-- `max_schedules` (1 to 10000) enabled schedules due by database time
-- (pgbatch.now()) with FOR UPDATE SKIP LOCKED (another node's tick takes the
-- others), and for each: the occurrences in (greatest(watermark,
-- effective_from), now]; none: only next_due_at is recomputed. Otherwise the
-- latest occurrence o* is decided once, the older ones are counted as
-- coalesced:
--   now - o* <= greatest(misfire_threshold, catchup_window)
--       overlap_policy 'skip' and a previous fire's run still active -> skipped_overlap
--       overlap_policy 'queue' and a previous fire's run still active -> not decided yet:
--           looked at again a second later (the window still applies)
--       else -> fired: the ledger row, and the queue job or batch launch
--   else -> skipped_late
-- The ledger row, the work and the watermark move (last_fire_at = o*,
-- next_due_at = the first occurrence after o*; a once schedule is disabled)
-- commit together. Returns the decisions, with `node_id` recorded on each.
create or replace function pgbatch.tick_schedules(node_id text default null, max_schedules integer default 100)
returns setof pgbatch.schedule_fire_info
language plpgsql
as $$
declare
    v_now   constant timestamptz := pgbatch.now();
    s       pgbatch.schedule;
    v_from  timestamptz;
    m       record;
    v_out   text;
    v_fire  pgbatch.schedule_fire;
begin
    if max_schedules is null or max_schedules < 1 or max_schedules > 10000 then
        perform pgbatch._raise('PB007', format('invalid max_schedules: %s, must be 1 to 10000',
                                               coalesce(max_schedules::text, 'NULL')));
    end if;
    if length(node_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid node_id: longer than 200 characters');
    end if;
    for s in
        select * from pgbatch.schedule x
         where x.enabled and x.next_due_at <= v_now
         order by x.next_due_at
         limit max_schedules
           for update skip locked
    loop
        v_from := greatest(s.last_fire_at, s.effective_from);
        m := pgbatch._schedule_missed(s, v_from, v_now);
        if m.latest is null then
            update pgbatch.schedule x
               set next_due_at = pgbatch._schedule_next_after(s, greatest(v_from, v_now))
             where x.id = s.id;
            continue;
        end if;
        if v_now - m.latest <= greatest(s.misfire_threshold, coalesce(s.catchup_window, interval '0')) then
            if s.overlap_policy <> 'allow' and pgbatch._schedule_overlap_active(s.id) then
                if s.overlap_policy = 'queue' then
                    update pgbatch.schedule x
                       set next_due_at = v_now + interval '1 second', last_outcome = 'waiting_overlap'
                     where x.id = s.id;
                    continue;
                end if;
                v_out := 'skipped_overlap';
            else
                v_out := 'fired';
            end if;
        else
            v_out := 'skipped_late';
        end if;
        v_fire := pgbatch._schedule_record_fire(s, 'schedule', m.latest, v_out,
                                                greatest(m.occurrences - 1, 0), m.capped,
                                                tick_schedules.node_id, null, v_now);
        if v_fire.schedule_id is null then
            -- impossible: the row lock serialises ticks and every occurrence > watermark is new
            raise exception using errcode = 'P0004',
                message = format('schedule %s: occurrence %s is already in the fire ledger', s.id, m.latest);
        end if;
        update pgbatch.schedule x
           set last_fire_at    = m.latest,
               next_due_at     = case when s.kind = 'once' then null
                                      else pgbatch._schedule_next_after(s, m.latest) end,
               enabled         = s.kind <> 'once',
               coalesced_total = x.coalesced_total + greatest(m.occurrences - 1, 0),
               last_outcome    = v_fire.outcome,
               last_decided_at = v_now,
               version         = x.version + 1
         where x.id = s.id and x.last_fire_at is not distinct from s.last_fire_at;
        if not found then
            raise exception using errcode = 'P0004',
                message = format('schedule %s: its watermark moved under the row lock', s.id);
        end if;
        return next pgbatch._schedule_fire_info(v_fire);
    end loop;
end
$$;

-- ==== schedule/functions/320_create_schedule.sql ====
-- Creates schedule `schedule_id` (docs/schedules.md) and returns it. Kind
-- 'cron' needs cron_expr (evaluated in tz), 'interval' needs every (at least
-- a second, no months; occurrences anchor + k * every in UTC, anchor
-- defaulting to now), 'once' needs once_at, 'manual' fires only through
-- trigger_schedule. The target is a queue job (queue, payload template: a
-- JSON object, default {}) or a batch job launch (job_name, params template,
-- default {}). misfire_threshold: lateness still on time; catchup_window:
-- how old a missed occurrence may be and still fire once (NULL or 0: not
-- beyond the threshold); overlap_policy: allow, skip or queue. A new
-- schedule does not catch up its past: occurrences count from now. Refusals
-- change nothing: ScheduleAlreadyExists (PB062) and those of
-- _schedule_checked (PB061, PB020, PB021, PB013, PB005, PB006, PB040, PB042).
create or replace function pgbatch.create_schedule(
    schedule_id       text,
    kind              text,
    cron_expr         text        default null,
    tz                text        default 'UTC',
    every             interval    default null,
    anchor            timestamptz default null,
    once_at           timestamptz default null,
    queue             text        default null,
    payload           jsonb       default null,
    job_name          text        default null,
    params            jsonb       default null,
    misfire_threshold interval    default '60 seconds',
    catchup_window    interval    default null,
    overlap_policy    text        default 'allow',
    enabled           boolean     default true
)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    v_now constant timestamptz := pgbatch.now();
    s pgbatch.schedule;
begin
    s.id := schedule_id;
    s.kind := kind;
    s.cron_expr := cron_expr;
    s.tz := coalesce(tz, 'UTC');
    s.every := every;
    s.anchor := case when kind = 'interval' and every is not null then coalesce(anchor, v_now) else anchor end;
    s.once_at := once_at;
    s.queue := queue;
    s.payload := payload;
    s.job_name := job_name;
    s.params := params;
    s.misfire_threshold := misfire_threshold;
    s.catchup_window := catchup_window;
    s.overlap_policy := overlap_policy;
    s := pgbatch._schedule_checked(s);
    s.enabled := coalesce(enabled, true);
    s.paused_at := case when s.enabled then null else v_now end;
    s.effective_from := v_now;
    s.coalesced_total := 0;
    s.version := 0;
    s.created_at := v_now;
    s.updated_at := v_now;
    s.next_due_at := pgbatch._schedule_next_after(s, v_now);
    insert into pgbatch.schedule select (s).* on conflict (id) do nothing;
    if not found then
        perform pgbatch._raise('PB062', format('schedule %s already exists', to_json(schedule_id)),
                               'change it with update_schedule, or delete_schedule it first');
    end if;
    return pgbatch._schedule_info(s);
end
$$;

-- ==== schedule/functions/321_update_schedule.sql ====
-- Changes schedule `schedule_id`: every argument given (not NULL) replaces
-- that field; the rest stay. Giving `kind` clears the fields of the old kind
-- (give the new kind's: cron_expr, every/anchor or once_at); giving queue or
-- job_name switches the target. catchup_window => '0' removes the catch-up.
-- A change of the timing (kind, cron_expr, tz, every, anchor, once_at) moves
-- effective_from to now and recomputes next_due_at: a change never fires an
-- occurrence retroactively. A change that changes nothing is a no-op (the
-- version stays). Returns the schedule. Refusals change nothing:
-- ScheduleNotFound (PB060) and those of create_schedule.
create or replace function pgbatch.update_schedule(
    schedule_id       text,
    kind              text        default null,
    cron_expr         text        default null,
    tz                text        default null,
    every             interval    default null,
    anchor            timestamptz default null,
    once_at           timestamptz default null,
    queue             text        default null,
    payload           jsonb       default null,
    job_name          text        default null,
    params            jsonb       default null,
    misfire_threshold interval    default null,
    catchup_window    interval    default null,
    overlap_policy    text        default null
)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    v_now constant timestamptz := pgbatch.now();
    v_old pgbatch.schedule := pgbatch._schedule_lock(schedule_id);
    s     pgbatch.schedule := v_old;
begin
    if kind is not null and kind is distinct from v_old.kind then
        s.kind := kind;
        s.cron_expr := null;
        s.every := null;
        s.anchor := null;
        s.once_at := null;
    end if;
    s.cron_expr := coalesce(cron_expr, s.cron_expr);
    s.tz := coalesce(tz, s.tz);
    s.every := coalesce(every, s.every);
    s.anchor := coalesce(anchor, s.anchor);
    if s.kind = 'interval' and s.every is not null and s.anchor is null then
        s.anchor := v_now;
    end if;
    s.once_at := coalesce(once_at, s.once_at);
    if queue is not null then
        s.queue := queue;
        s.job_name := null;
        s.params := null;
        s.payload := coalesce(payload, case when v_old.target = 'queue' then v_old.payload end);
    elsif job_name is not null then
        s.job_name := job_name;
        s.queue := null;
        s.payload := null;
        s.params := coalesce(params, case when v_old.target = 'batch' then v_old.params end);
    else
        s.payload := coalesce(payload, s.payload);
        s.params := coalesce(params, s.params);
    end if;
    s.misfire_threshold := coalesce(misfire_threshold, s.misfire_threshold);
    s.catchup_window := coalesce(catchup_window, s.catchup_window);
    s.overlap_policy := coalesce(overlap_policy, s.overlap_policy);
    s := pgbatch._schedule_checked(s);
    if row(s.kind, s.cron_expr, s.tz, s.every, s.anchor, s.once_at, s.target, s.queue, s.payload,
           s.job_name, s.params, s.misfire_threshold, s.catchup_window, s.overlap_policy)
       is not distinct from
       row(v_old.kind, v_old.cron_expr, v_old.tz, v_old.every, v_old.anchor, v_old.once_at, v_old.target,
           v_old.queue, v_old.payload, v_old.job_name, v_old.params, v_old.misfire_threshold,
           v_old.catchup_window, v_old.overlap_policy) then
        return pgbatch._schedule_info(v_old);
    end if;
    if s.definition_hash <> v_old.definition_hash then
        s.effective_from := v_now;
        s.next_due_at := pgbatch._schedule_next_after(s, greatest(s.last_fire_at, v_now));
        if s.kind = 'once' and s.enabled is false and s.paused_at is null then
            s.enabled := true;  -- a once schedule that was decided, given a new instant
        end if;
    end if;
    s.version := v_old.version + 1;
    s.updated_at := v_now;
    update pgbatch.schedule x
       set kind = s.kind, cron_expr = s.cron_expr, tz = s.tz, every = s.every,
           anchor = s.anchor, once_at = s.once_at, target = s.target, queue = s.queue, payload = s.payload,
           job_name = s.job_name, params = s.params, misfire_threshold = s.misfire_threshold,
           catchup_window = s.catchup_window, overlap_policy = s.overlap_policy, enabled = s.enabled,
           effective_from = s.effective_from, next_due_at = s.next_due_at,
           definition_hash = s.definition_hash, version = s.version, updated_at = s.updated_at
     where x.id = s.id;
    return pgbatch._schedule_info(s);
end
$$;

-- ==== schedule/functions/322_delete_schedule.sql ====
-- Deletes schedule `schedule_id` and its fire ledger (the queue jobs and
-- batch executions its fires started are left alone). Returns true, or
-- raises ScheduleNotFound (PB060).
create or replace function pgbatch.delete_schedule(schedule_id text)
returns boolean
language plpgsql
as $$
begin
    perform pgbatch._schedule_lock(schedule_id);
    delete from pgbatch.schedule x where x.id = delete_schedule.schedule_id;
    return true;
end
$$;

-- ==== schedule/functions/323_pause_schedule.sql ====
-- Pauses schedule `schedule_id`: no occurrence fires until resume_schedule
-- (enabled = false, paused_at = now). Pausing a paused schedule changes
-- nothing. Returns the schedule; ScheduleNotFound (PB060).
create or replace function pgbatch.pause_schedule(schedule_id text)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    s pgbatch.schedule := pgbatch._schedule_lock(schedule_id);
begin
    if s.paused_at is not null then
        return pgbatch._schedule_info(s);
    end if;
    update pgbatch.schedule x
       set enabled = false, paused_at = pgbatch.now(), version = x.version + 1, updated_at = pgbatch.now()
     where x.id = s.id
    returning * into s;
    return pgbatch._schedule_info(s);
end
$$;

-- ==== schedule/functions/324_resume_schedule.sql ====
-- Resumes paused schedule `schedule_id`. catch_up false (default): the
-- occurrences of the pause are skipped (effective_from = now; the next fire
-- is the first occurrence after now). catch_up true: the latest occurrence
-- missed during the pause fires once at the next tick if it is within the
-- schedule's window (misfire_threshold, catchup_window), as after any
-- downtime. Resuming a schedule that is not paused changes nothing. Returns
-- the schedule; ScheduleNotFound (PB060).
create or replace function pgbatch.resume_schedule(schedule_id text, catch_up boolean default false)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    v_now constant timestamptz := pgbatch.now();
    s pgbatch.schedule := pgbatch._schedule_lock(schedule_id);
begin
    if s.paused_at is null then
        return pgbatch._schedule_info(s);
    end if;
    s.enabled := true;
    s.paused_at := null;
    if not coalesce(catch_up, false) then
        s.effective_from := greatest(s.effective_from, v_now);
    end if;
    s.next_due_at := pgbatch._schedule_next_after(s, greatest(s.last_fire_at, s.effective_from));
    update pgbatch.schedule x
       set enabled = true, paused_at = null, effective_from = s.effective_from, next_due_at = s.next_due_at,
           version = x.version + 1, updated_at = v_now
     where x.id = s.id
    returning * into s;
    return pgbatch._schedule_info(s);
end
$$;

-- ==== schedule/functions/325_trigger_schedule.sql ====
-- Fires schedule `schedule_id` now, whatever its kind and state (paused
-- too): a ledger row with source 'manual' and fire_at = now, and its queue
-- job or batch launch, in one transaction. The watermark does not move. With
-- `request_id` (at most 200 characters), a repeated call returns the first
-- call's fire and fires nothing. Returns the fire; ScheduleNotFound (PB060).
create or replace function pgbatch.trigger_schedule(schedule_id text, request_id text default null)
returns pgbatch.schedule_fire_info
language plpgsql
as $$
declare
    v_now  constant timestamptz := pgbatch.now();
    s      pgbatch.schedule;
    v_at   timestamptz := v_now;
    v_fire pgbatch.schedule_fire;
begin
    if length(request_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid request_id: longer than 200 characters');
    end if;
    s := pgbatch._schedule_lock(schedule_id);
    loop
        if request_id is not null then
            select * into v_fire from pgbatch.schedule_fire f
             where f.schedule_id = s.id and f.request_id = trigger_schedule.request_id;
            if found then
                return pgbatch._schedule_fire_info(v_fire);
            end if;
        end if;
        v_fire := pgbatch._schedule_record_fire(s, 'manual', v_at, 'fired', 0, false, null,
                                                trigger_schedule.request_id, v_now);
        exit when v_fire.schedule_id is not null;
        if v_at >= v_now + interval '1 second' then
            raise exception using errcode = 'P0004',
                message = format('schedule %s: no free manual fire instant near %s', s.id, v_now);
        end if;
        v_at := v_at + interval '1 microsecond';  -- two triggers at one instant (the test clock)
    end loop;
    update pgbatch.schedule x set last_outcome = v_fire.outcome, last_decided_at = v_now where x.id = s.id;
    return pgbatch._schedule_fire_info(v_fire);
end
$$;

-- ==== schedule/functions/326_backfill_schedule.sql ====
-- Fires the occurrences of schedule `schedule_id` from `from_time` to
-- `to_time` (both included; at most 1000, and not in the future), each as
-- a ledger row with source 'backfill' and its queue job or batch launch, in
-- one transaction; occurrences backfilled before are left alone (not
-- returned). The watermark does not move. Occurrences at or before the
-- watermark (decided by the schedule already) are refused unless `force`.
-- Returns the new fires, oldest first. Refusals change nothing:
-- ScheduleNotFound (PB060), InvalidSchedule (PB061: a manual schedule has no
-- occurrences), InvalidTime (PB013), InvalidArgument (PB007: reversed range,
-- more than 1000 occurrences, decided ones without force).
create or replace function pgbatch.backfill_schedule(schedule_id text, from_time timestamptz,
                                                     to_time timestamptz, force boolean default false)
returns setof pgbatch.schedule_fire_info
language plpgsql
as $$
declare
    v_now  constant timestamptz := pgbatch.now();
    s      pgbatch.schedule;
    v_at   timestamptz;
    v_all  timestamptz[] := '{}';
    v_fire pgbatch.schedule_fire;
begin
    perform pgbatch._check(pgbatch._cron_time_problem('from_time', from_time));
    perform pgbatch._check(pgbatch._cron_time_problem('to_time', to_time));
    if to_time < from_time then
        perform pgbatch._raise('PB007', format('invalid backfill range: to_time %s is before from_time %s',
                                               to_time, from_time));
    end if;
    if to_time > v_now then
        perform pgbatch._raise('PB013', format('invalid to_time %s: in the future (now is %s)', to_time, v_now),
                               'future occurrences fire by themselves');
    end if;
    s := pgbatch._schedule_lock(schedule_id);
    if s.kind = 'manual' then
        perform pgbatch._raise('PB061', format('schedule %s is manual: it has no occurrences to backfill '
                                               '(use trigger_schedule)', s.id));
    end if;
    v_at := pgbatch._schedule_next_after(s, from_time - interval '1 microsecond');
    while v_at is not null and v_at <= to_time loop
        if cardinality(v_all) = 1000 then
            perform pgbatch._raise('PB007', format('invalid backfill range: more than 1000 occurrences of '
                                                   'schedule %s from %s to %s', s.id, from_time, to_time));
        end if;
        if v_at <= s.last_fire_at and not coalesce(force, false) then
            perform pgbatch._raise('PB007', format('invalid backfill range: occurrence %s of schedule %s is at or '
                                                   'before its watermark %s', v_at, s.id, s.last_fire_at),
                                   'pass force => true to fire decided occurrences again');
        end if;
        v_all := v_all || v_at;
        v_at := pgbatch._schedule_next_after(s, v_at);
    end loop;
    foreach v_at in array v_all loop
        v_fire := pgbatch._schedule_record_fire(s, 'backfill', v_at, 'fired', 0, false, null, null, v_now);
        if v_fire.schedule_id is not null then
            return next pgbatch._schedule_fire_info(v_fire);
        end if;
    end loop;
end
$$;

-- ==== schedule/functions/330_schedules.sql ====
-- The schedules and their state (next due time, watermark, last outcome,
-- coalesced count), by name; only `schedule_id` when given (then
-- ScheduleNotFound, PB060, if there is none).
create or replace function pgbatch.schedules(schedule_id text default null)
returns setof pgbatch.schedule_info
language plpgsql
stable
as $$
begin
    if schedule_id is not null
       and not exists (select 1 from pgbatch.schedule x where x.id = schedules.schedule_id) then
        perform pgbatch._raise('PB060', format('schedule %s does not exist', to_json(schedule_id)));
    end if;
    return query
        select i.*
          from pgbatch.schedule x, lateral pgbatch._schedule_info(x) i
         where schedules.schedule_id is null or x.id = schedules.schedule_id
         order by x.id;
end
$$;

-- ==== schedule/functions/331_schedule_fires.sql ====
-- The fire history of schedule `schedule_id`, newest decision first, at most
-- `limit` rows (1 to 10000): each fire's source, occurrence, outcome,
-- coalesced count, the queue job or batch execution it started and that
-- run's state (run_status: pending, running, succeeded, failed, cancelled,
-- stopped, abandoned; NULL when nothing ran or the record is gone).
-- ScheduleNotFound (PB060), InvalidArgument (PB007).
create or replace function pgbatch.schedule_fires(schedule_id text, "limit" integer default 50)
returns setof pgbatch.schedule_fire_info
language plpgsql
stable
as $$
begin
    if "limit" is null or "limit" < 1 or "limit" > 10000 then
        perform pgbatch._raise('PB007', format('invalid limit: %s, must be 1 to 10000',
                                               coalesce("limit"::text, 'NULL')));
    end if;
    if not exists (select 1 from pgbatch.schedule x where x.id = schedule_fires.schedule_id) then
        perform pgbatch._raise('PB060', format('schedule %s does not exist',
                                               coalesce(to_json(schedule_id)::text, 'NULL')));
    end if;
    return query
        select i.*
          from pgbatch.schedule_fire f, lateral pgbatch._schedule_fire_info(f) i
         where f.schedule_id = schedule_fires.schedule_id
         order by f.decided_at desc, f.fire_at desc
         limit "limit";
end
$$;

-- ==== schedule/privileges/030_schedule_access.sql (the scheduler's rows) ====
-- The scheduler (docs/schedules.md): workers tick; admins manage schedules
-- and read their state and history.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('tick_schedules',    'worker', true),
    ('create_schedule',   'admin',  true),
    ('update_schedule',   'admin',  true),
    ('delete_schedule',   'admin',  true),
    ('pause_schedule',    'admin',  true),
    ('resume_schedule',   'admin',  true),
    ('trigger_schedule',  'admin',  true),
    ('backfill_schedule', 'admin',  true),
    ('schedules',         'admin',  true),
    ('schedule_fires',    'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
