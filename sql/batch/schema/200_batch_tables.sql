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
