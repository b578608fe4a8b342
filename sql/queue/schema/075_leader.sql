-- Leadership leases, judged by database time. One row per leadership scope
-- (the maintenance loop uses 'maintenance'). The holder, a node incarnation
-- (node_id, boot_id), leads while pgbatch.now() < lease_expires_at, and
-- renews the lease well before it runs out (try_lead()). A holder that stops
-- renewing -- dead, or alive but stuck (SIGSTOP, a hung event loop, a network
-- partition that keeps its session open) -- loses the lease when it expires,
-- and the next node that asks takes the row over. No session state is
-- involved (no advisory lock), so leadership works through a transaction
-- pooler and nothing stays behind on an idle pooled connection.
-- `term` grows by one each time the lease changes hands or lapses and is taken
-- again: work fenced by holds_lead() names the term it was started under.
create table pgbatch.leader (
    scope            text        primary key,
    node_id          text        not null,
    boot_id          uuid        not null,
    term             bigint      not null,
    acquired_at      timestamptz not null,
    renewed_at       timestamptz not null,
    lease_expires_at timestamptz not null
);
