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
