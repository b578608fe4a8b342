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
-- list_jobs(): the listing order (creation, then enqueue order, then id) read
-- backwards from a keyset cursor, so a page costs `limit` index entries
-- however large the archive is. One more index entry per archived job; the
-- live table gets no such index (every enqueue and claim would pay for it).
create index job_archive_listing_idx on pgbatch.job_archive (created_at, seq, id);
-- The dead and cancelled records (partial: an ack of a done job writes no
-- entry into either, so an archived done job costs two index entries, the
-- primary key and the listing): list_jobs() filtered by a rare state reads
-- them in the listing order (any queue; within one queue), a page costing
-- `limit` entries instead of a walk along the listing index past every done
-- job; and the retention sweep of dead records (kept longer than done ones)
-- finds them by state and creation time, as the done sweep does along the
-- listing index. A dead or cancelled job costs two more entries.
create index job_archive_rare_listing_idx on pgbatch.job_archive (state, created_at, seq, id)
    where state <> 'done';
create index job_archive_rare_queue_listing_idx on pgbatch.job_archive (queue, state, created_at, seq, id)
    where state <> 'done';
