-- Which group role may execute each public function (name not starting with
-- '_'), and whether it runs with its owner's rights. pgbatch._apply_privileges()
-- reads it: a public function without a row here makes it raise, so a new
-- function cannot be forgotten. Internal '_' functions have no row: no group
-- role may execute them. See docs/roles.md.
--   granted_to: 'producer', 'worker' or 'admin' (the kinds of
--               pgbatch.meta's role.* rows; worker and admin include producer)
--   security_definer: false only for helpers that read no table (pure
--               functions and the clock): they stay inlinable, and need no right
create table pgbatch.function_access (
    function_name    text    primary key,
    granted_to       text    not null check (granted_to in ('producer', 'worker', 'admin')),
    security_definer boolean not null default true
);
