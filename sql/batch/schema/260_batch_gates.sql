-- Approval gates (BATCH.md §4.4, docs/batch-gates.md): each approval row
-- keeps the timeout rule in force when its gate was reached, so a decision
-- taken after any restart of workers or of the server applies the same rule.
-- on_timeout: what the gate-timeout sweep (expire_gates) decides once
-- expires_at has passed without a decision ('reject' or 'approve').
alter table pgbatch.approval add column if not exists on_timeout text not null default 'reject'
    check (on_timeout in ('reject', 'approve'));
-- The gate-timeout sweep's scan: pending approvals by expiry.
create index if not exists approval_pending_expiry on pgbatch.approval (expires_at)
    where status = 'PENDING' and expires_at is not null;
