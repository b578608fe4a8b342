-- Who may execute the public functions of sql/batch (docs/roles.md):
-- producers compute keys and launch batch jobs; workers register
-- definitions and run steps; admins make every operator call.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('canonical_params',   'producer', false),
    ('job_key',            'producer', false),
    ('next_instance',      'producer', true),
    ('launch_job',         'producer', true),
    ('register_job',       'worker',   true),
    ('start_execution',    'worker',   true),
    ('start_step',         'worker',   true),
    ('commit_chunk',       'worker',   true),
    ('end_step',           'worker',   true),
    ('handoff_execution',  'worker',   true),
    ('execution_control',  'worker',   true),
    ('recover_executions', 'worker',   true),
    ('restart_execution',  'admin',    true),
    ('stop_execution',     'admin',    true),
    ('abandon_execution',  'admin',    true),
    ('recover_execution',  'admin',    true),
    ('cancel_execution',   'admin',    true),
    ('job_executions',     'admin',    true),
    ('step_executions',    'admin',    true),
    ('execution_events',   'admin',    true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
