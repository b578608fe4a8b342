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
