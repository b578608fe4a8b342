-- Last step of every install and of every migration that (re)creates
-- functions: CREATE OR REPLACE FUNCTION resets SECURITY DEFINER and SET
-- clauses, so they are (re)applied here, after all functions exist.
select pgbatch._apply_privileges();
