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
