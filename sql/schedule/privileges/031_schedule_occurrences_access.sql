-- schedule_occurrences (the next occurrences of a schedule's timing, the
-- dashboard wizard's preview) reads no table, like the cron functions, but
-- runs the scheduler's internal helpers: SECURITY DEFINER, open to every
-- pgbatch role.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('schedule_occurrences', 'producer', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
