-- Who may execute the pause and resume functions (docs/roles.md,
-- docs/batch-pause.md): workers park the executions they run and sweep timed
-- resumes; admins pause and resume.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('park_execution',        'worker', true),
    ('resume_due_executions', 'worker', true),
    ('pause_execution',       'admin',  true),
    ('resume_execution',      'admin',  true),
    ('paused_executions',     'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
