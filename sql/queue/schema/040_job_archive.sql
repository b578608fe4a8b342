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
