-- Who may execute the public functions of sql/queue (see
-- sql/core/schema/090_function_access.sql). Producers enqueue and read stats;
-- workers claim and settle (and include producer: tasks enqueue too);
-- admins pause, resume and requeue.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('limits',            'producer', false),
    ('max_payload_bytes', 'producer', false),
    ('channel_name',      'producer', false),
    ('backoff',           'producer', false),
    ('enqueue',           'producer', true),
    ('enqueue_many',      'producer', true),
    ('enqueue_arrays',    'producer', true),
    ('cancel_job',        'producer', true),
    ('kv_get',            'producer', true),
    ('queue_stats',       'producer', true),
    ('claim',             'worker',   true),
    ('ack',               'worker',   true),
    ('ack_many',          'worker',   true),
    ('ack_ids',           'worker',   true),
    ('nack',              'worker',   true),
    ('dead_letter',       'worker',   true),
    ('renew_lease',       'worker',   true),
    ('fence_claim',       'worker',   true),
    ('release',           'worker',   true),
    ('reap_expired',      'worker',   true),
    ('sweep_retention',   'worker',   true),
    ('compact_counters',  'worker',   true),
    ('announce_due',      'worker',   true),
    ('next_due',          'worker',   true),
    ('register_node',     'worker',   true),
    ('heartbeat_node',    'worker',   true),
    ('deregister_node',   'worker',   true),
    ('try_lead',          'worker',   true),
    ('resign_lead',       'worker',   true),
    ('holds_lead',        'worker',   true),
    ('vacuum_stats',      'worker',   true),
    ('pause_queue',       'admin',    true),
    ('resume_queue',      'admin',    true),
    ('set_queue_notify',  'admin',    true),
    ('requeue_dead_job',  'admin',    true),
    ('get_job',           'admin',    true),
    ('list_jobs',         'admin',    true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
