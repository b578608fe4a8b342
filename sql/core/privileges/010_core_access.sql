-- Who may execute the public functions of sql/core (see 090_function_access.sql).
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('now',          'producer', false),
    ('uuid_v7',      'producer', false),
    ('check_compat', 'producer', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
