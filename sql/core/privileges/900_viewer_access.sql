-- What the viewer role (role.viewer, default pgbatch_viewer) may execute:
-- every function that changes nothing and that the read-only dashboard
-- (`pgbatch web --read-only`) or the CLI's read commands call: the reports
-- of jobs (payloads and errors included), queues, nodes, metrics, runs,
-- steps, events, approvals and schedules, and the pure helpers. Never an
-- action, a claim or a settlement; no function returns a claim token. Runs
-- after every domain's function_access rows, before 999_apply_privileges.
-- A new read-only report joins this list (and its migration sets the flag).
update pgbatch.function_access set viewer = true
 where function_name in (
    -- producer functions that only read (or compute)
    'backoff', 'canonical_params', 'channel_name', 'check_compat', 'cron_missed', 'cron_next',
    'cron_occurrences', 'cron_parse', 'cron_prev', 'job_key', 'kv_get', 'limits', 'list_tasks',
    'max_payload_bytes', 'now', 'queue_stats', 'schedule_occurrences', 'uuid_v7',
    -- the admin reports
    'approvals', 'execution_events', 'get_execution', 'get_job', 'job_executions',
    'job_executions_page', 'list_jobs', 'metrics', 'paused_executions', 'schedule_fires',
    'schedules', 'step_executions', 'web_nodes');
