-- limits: every default and limit of the SQL API, in one place (docs/limits.md).
-- Functions read them from here (immutable: folded into each plan once), and
-- pgbatch/_limits.py mirrors them for Python (a test keeps the two equal).
-- Lengths are in characters, sizes in bytes (of jsonb: its stored form),
-- durations in seconds.
--   default_max_attempts         enqueue's max_attempts when none is given
--   default_lease_seconds        claim / renew_lease / fence_claim: the lease
--                                when none is given
--   max_queue_name_length        queue names: 1 .. this many characters, not blank
--   max_payload_bytes            a job's payload
--   min_lease_seconds            claim / renew_lease: shortest lease
--   max_lease_seconds            claim / renew_lease: longest lease (1 day)
--   max_run_at_offset_seconds    run_at, retry_at, requeue run_at, backoff base
--                                and cap: at most this far from now (10 years)
--   max_retention_seconds        sweep_retention ages (100 years)
--   max_dedup_key_length         dedup keys (well under the btree entry limit)
--   max_kv_key_length            kv keys (well under the btree entry limit)
--   max_kv_value_bytes           one kv value
--   max_error_bytes              nack's error, dead_letter's reason
--   max_result_bytes             a task's return value (ack effects'
--                                "return_value"), refused above it
--   error_history_length         how many earlier attempts' errors a job keeps
--                                (last_error "history", newest first)
--   max_node_id_length           node ids and claim's worker_id
--   max_node_info_bytes          register_node's info
create or replace function pgbatch.limits()
returns jsonb
language sql
immutable
parallel safe
as $$
    select '{
        "default_max_attempts": 20,
        "default_lease_seconds": 30,
        "max_queue_name_length": 128,
        "max_payload_bytes": 1048576,
        "min_lease_seconds": 1,
        "max_lease_seconds": 86400,
        "max_run_at_offset_seconds": 315576000,
        "max_retention_seconds": 3155760000,
        "max_dedup_key_length": 256,
        "max_kv_key_length": 256,
        "max_kv_value_bytes": 1048576,
        "max_error_bytes": 65536,
        "max_result_bytes": 65536,
        "error_history_length": 10,
        "max_node_id_length": 200,
        "max_node_info_bytes": 65536
    }'::jsonb
$$;
