-- Who may execute the task registry's functions and drop_queue (see
-- sql/core/schema/090_function_access.sql): workers register their tasks;
-- producers read the registry and enqueue by task name; admins drop queues.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('register_tasks', 'worker',   true),
    ('list_tasks',     'producer', true),
    ('enqueue_task',   'producer', true),
    ('drop_queue',     'admin',    true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
