-- Who may execute the public functions of sql/schedule (see
-- sql/core/schema/090_function_access.sql). Cron evaluation reads no table:
-- pure helpers, open to every pgbatch role, not SECURITY DEFINER.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('cron_parse',       'producer', false),
    ('cron_next',        'producer', false),
    ('cron_prev',        'producer', false),
    ('cron_occurrences', 'producer', false)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
