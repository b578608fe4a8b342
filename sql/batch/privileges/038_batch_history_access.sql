-- Who may execute the batch history functions added with retention
-- (docs/roles.md): the maintenance leader (a worker) purges old history;
-- operators read one execution.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('purge_batch_history', 'worker', true),
    ('get_execution',       'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
