-- Who may execute the web server's read functions (see
-- sql/core/schema/090_function_access.sql): operator reports, admin only.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('web_nodes', 'admin', true),
    ('metrics',   'admin', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
