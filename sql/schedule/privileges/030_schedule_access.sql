-- Who may execute the public functions of sql/schedule (see
-- sql/core/schema/090_function_access.sql). Cron evaluation reads no table,
-- but it runs internal helpers (_cron_*, _tz_*, _raise) that no group role may
-- execute itself: SECURITY DEFINER, open to every pgbatch role.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('cron_parse',       'producer', true),
    ('cron_next',        'producer', true),
    ('cron_prev',        'producer', true),
    ('cron_occurrences', 'producer', true),
    ('cron_missed',      'producer', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

-- The scheduler (docs/schedules.md): workers tick; admins manage schedules
-- and read their state and history.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('tick_schedules',    'worker', true),
    ('create_schedule',   'admin',  true),
    ('update_schedule',   'admin',  true),
    ('delete_schedule',   'admin',  true),
    ('pause_schedule',    'admin',  true),
    ('resume_schedule',   'admin',  true),
    ('trigger_schedule',  'admin',  true),
    ('backfill_schedule', 'admin',  true),
    ('schedules',         'admin',  true),
    ('schedule_fires',    'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

-- Schedules defined in code: every worker creates them or brings them up to
-- date at start (ensure_schedule); pausing, deleting, triggering stay the admins'.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('ensure_schedule',   'worker', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
