-- Who may execute the approval-gate functions (docs/roles.md,
-- docs/batch-gates.md): workers park executions at gates and sweep gate
-- timeouts; admins decide gates and list approvals.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('await_gate',    'worker', true),
    ('expire_gates',  'worker', true),
    ('approve_gate',  'admin',  true),
    ('reject_gate',   'admin',  true),
    ('approvals',     'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;
