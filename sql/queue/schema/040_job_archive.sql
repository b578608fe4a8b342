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
    result         jsonb,         -- what the settling call returned (ack: follow-up ids)
    -- the job's pgbatch.job.seq (enqueue order), copied when it is archived;
    -- 0 for records archived before the column existed (their id breaks ties)
    seq            bigint      not null default 0
);
-- Retention sweeps of dead records (kept longer than done ones). Partial: an
-- ack of a done job writes no entry into it. Done and cancelled records are
-- swept along job_archive_listing_idx (see sweep_retention), so an archived
-- job costs two index entries (this key and the listing), not three.
create index job_archive_dead_idx on pgbatch.job_archive (finished_at) where state = 'dead';
-- list_jobs(): the listing order (creation, then enqueue order, then id) read
-- backwards from a keyset cursor, so a page costs `limit` index entries
-- however large the archive is. One more index entry per archived job; the
-- live table gets no such index (every enqueue and claim would pay for it).
create index job_archive_listing_idx on pgbatch.job_archive (created_at, seq, id);
