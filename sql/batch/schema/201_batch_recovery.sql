-- Recovery after host loss (BATCH.md §7): RestartAll and RestartFrom start a
-- new execution whose steps from index fresh_from_step (0-based) on run from
-- scratch (empty contexts, run even when they completed before); the steps
-- before it are skipped. NULL for every other execution (the restart rules of
-- start_step apply).
alter table pgbatch.job_execution add column if not exists fresh_from_step integer;
