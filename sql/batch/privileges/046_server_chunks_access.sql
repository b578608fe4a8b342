-- Who may execute the chunk loop of a step run in the server (docs/roles.md,
-- docs/batch.md): workers. SECURITY INVOKER: it runs the worker's own
-- statements with the worker's rights, and commits them (a procedure with
-- transaction control may not be SECURITY DEFINER).
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('run_server_chunks', 'worker', false)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
