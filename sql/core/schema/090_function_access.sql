-- Which group role may execute each public function (name not starting with
-- '_'), and whether it runs with its owner's rights. pgbatch._apply_privileges()
-- reads it: a public function without a row here makes it raise, so a new
-- function cannot be forgotten. Internal '_' functions have no row: no group
-- role may execute them. See docs/roles.md.
--   granted_to: 'producer', 'worker' or 'admin' (the kinds of
--               pgbatch.meta's role.* rows; worker and admin include producer)
--   security_definer: false only for helpers that read no table (pure
--               functions and the clock): they stay inlinable, and need no right
--   viewer:     also executable by the viewer role (role.viewer, default
--               pgbatch_viewer): a function that changes nothing, which the
--               read-only dashboard and the CLI's read commands call. Only a
--               producer or admin function may be one, so admin has every
--               right the viewer has.
create table pgbatch.function_access (
    function_name    text    primary key,
    granted_to       text    not null check (granted_to in ('producer', 'worker', 'admin')),
    security_definer boolean not null default true,
    viewer           boolean not null default false,
    constraint function_access_viewer_only_reads check (not viewer or granted_to in ('producer', 'admin'))
);
