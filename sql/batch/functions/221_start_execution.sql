-- T2: the worker that claimed work item `job_id` (with `claim_token`) of
-- execution `execution_id` takes it over: STARTING -> STARTED, lease_owner =
-- the claim's claimed_by, lease_boot_id = `boot_id`, lease_epoch + 1,
-- start_time set once, event `claimed`. A STARTED, STOPPING or PAUSING
-- execution whose current work item is this one was left by a lost worker
-- (its claim was reaped and claimed again): it is resumed forward (same
-- execution, same step row), recovery_count + 1, event `recovered`. Any other
-- status (stopped or abandoned while the item waited, a stale item) changes
-- nothing: the returned status says so and the worker acks its item.
-- Returns (status, lease_epoch, current_step, job_name, definition_fp):
-- the worker runs the definition it registered with that fingerprint. ClaimLost (PB001) when the
-- claim is not held; JobExecutionNotFound (PB047).
create or replace function pgbatch.start_execution(execution_id bigint, job_id uuid, claim_token uuid,
    boot_id uuid default null)
returns table (status text, lease_epoch bigint, current_step text, job_name text, definition_fp text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_owner text;
    v_lease timestamptz;
    v_from  text;
    x       pgbatch.job_execution;
begin
    select j.claimed_by, j.lease_expires_at into v_owner, v_lease from pgbatch.job j
     where j.id = start_execution.job_id and j.claim_token = start_execution.claim_token
       for update;
    if not found then
        perform pgbatch._settled_result(start_execution.job_id, start_execution.claim_token, 'fence');
        perform pgbatch._raise('PB001', format('claim of job %s is lost', start_execution.job_id));
    end if;
    select * into x from pgbatch.job_execution e where e.id = start_execution.execution_id for update;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', start_execution.execution_id));
    end if;
    if x.queue_job_id is distinct from start_execution.job_id
       or x.status not in ('STARTING', 'STARTED', 'STOPPING', 'PAUSING') then
        return query select x.status, x.lease_epoch, x.current_step,
                            (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                            x.definition_fp::text;
        return;
    end if;
    v_from := x.status;
    update pgbatch.job_execution e
       set status = case when x.status = 'STARTING' then 'STARTED' else x.status end,
           lease_owner = v_owner, lease_boot_id = start_execution.boot_id, lease_epoch = e.lease_epoch + 1,
           lease_expires_at = v_lease, start_time = coalesce(e.start_time, pgbatch.now()),
           recovery_count = e.recovery_count + case when x.status = 'STARTING' then 0 else 1 end,
           last_updated = pgbatch.now(), version = e.version + 1
     where e.id = x.id
    returning * into x;
    perform pgbatch._batch_event(x.id, null, case when v_from = 'STARTING' then 'claimed' else 'recovered' end,
                                 v_from, x.status, null, jsonb_build_object('job_id', start_execution.job_id));
    return query select x.status, x.lease_epoch, x.current_step,
                        (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                        x.definition_fp::text;
end
$$;
