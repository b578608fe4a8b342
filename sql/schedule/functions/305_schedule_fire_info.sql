-- A ledger row as schedule_fire_info, with the state of its run.
create or replace function pgbatch._schedule_fire_info(f pgbatch.schedule_fire)
returns pgbatch.schedule_fire_info
language sql
stable
as $$
    select row(f.schedule_id, f.source, f.fire_at, f.outcome, f.coalesced_count, f.coalesced_capped,
               f.job_id, f.job_execution_id, f.error, f.request_id, f.node_id, f.decided_at,
               pgbatch._schedule_run_status(f.job_id, f.job_execution_id))::pgbatch.schedule_fire_info
$$;
