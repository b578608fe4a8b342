-- Row type returned by get_job() and list_jobs(): one job, live or archived,
-- as an operator sees it. It never carries a claim token: only claim()
-- returns one, so holding a token means having claimed the job.
create type pgbatch.job_info as (
    id               uuid,
    seq              bigint,       -- enqueue order (0: archived before it was recorded)
    queue            text,
    state            text,         -- pending, scheduled, claimed, done, dead, cancelled
    payload          jsonb,
    priority         integer,
    attempt          integer,
    max_attempts     integer,
    run_at           timestamptz,
    created_at       timestamptz,
    dedup_key        text,
    claimed_by       text,         -- the worker of the current (live) or last claim
    claimed_at       timestamptz,  -- live claims only
    lease_expires_at timestamptz,  -- live claims only
    cancel_requested boolean,      -- cancel_job() flagged the running claim
    finished_at      timestamptz,  -- archived jobs: when it was settled for good
    last_error       jsonb,
    result           jsonb         -- archived jobs: what the settling call returned
);
