-- Who may execute the dashboard's page of job executions (docs/roles.md):
-- an operator report, admin only, like job_executions.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('job_executions_page', 'admin', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
