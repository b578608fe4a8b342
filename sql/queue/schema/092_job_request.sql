-- Operator requests on jobs that carried a request_id (the web's
-- Idempotency-Key): requeue_dead_job records (job_id, request_id) in the
-- transaction that revives the job, so a retried call with the same
-- request_id for the same job returns the first call's answer and changes
-- nothing, even if the job died again since. A refused call records nothing.
-- sweep_retention deletes the records older than its dead_after (the age at
-- which dead records go too). kind names the call ('requeue_dead').
create table pgbatch.job_request (
    job_id       uuid        not null,
    request_id   uuid        not null,
    kind         text        not null,
    requested_at timestamptz not null,
    primary key (job_id, request_id, kind)
);
create index job_request_requested_at_idx on pgbatch.job_request (requested_at);
