-- T2: the worker that claimed work item `job_id` (with `claim_token`) of
-- execution `execution_id` takes it over: STARTING -> STARTED, lease_owner =
-- the claim's claimed_by, lease_boot_id = `boot_id` (default: the boot the
-- node registered last), lease_epoch + 1, start_time set once, event
-- `claimed`. A STARTED, STOPPING or PAUSING execution whose current work item
-- this is was left by a lost worker (its claim was reaped, released or ended
-- by its node's restart, and claimed again): it is recovered first
-- (_batch_recover with the job's policy, event `recovered`); when that leaves
-- it STARTING (ResumeForward) this claim takes it over as above. Any other
-- status (stopped, abandoned, failed by the recovery limit, a stale item)
-- changes nothing more: the returned status says so and the worker acks its
-- item. Returns (status, lease_epoch, current_step, job_name,
-- definition_fp): the worker runs the definition it registered with that
-- fingerprint. ClaimLost (PB001) when the claim is not held;
-- JobExecutionNotFound (PB047).
create or replace function pgbatch.start_execution(execution_id bigint, job_id uuid, claim_token uuid,
    boot_id uuid default null)
returns table (status text, lease_epoch bigint, current_step text, job_name text, definition_fp text)
language plpgsql
as $$
#variable_conflict use_column
declare
    v_owner text;
    v_lease timestamptz;
    v_boot  uuid;
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
    if x.status <> 'STARTING' then
        perform pgbatch._batch_recover(x.id, 'its work item was claimed again (the last worker was lost)', true);
        select * into x from pgbatch.job_execution e where e.id = start_execution.execution_id;
        if x.status <> 'STARTING' then
            return query select x.status, x.lease_epoch, x.current_step,
                                (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                                x.definition_fp::text;
            return;
        end if;
    end if;
    v_boot := coalesce(start_execution.boot_id, (select n.boot_id from pgbatch.node n where n.node_id = v_owner));
    update pgbatch.job_execution e
       set status = 'STARTED', lease_owner = v_owner, lease_boot_id = v_boot, lease_epoch = e.lease_epoch + 1,
           lease_expires_at = v_lease, start_time = coalesce(e.start_time, pgbatch.now()),
           last_updated = pgbatch.now(), version = e.version + 1
     where e.id = x.id
    returning * into x;
    perform pgbatch._batch_event(x.id, null, 'claimed', 'STARTING', x.status, null,
                                 jsonb_build_object('job_id', start_execution.job_id));
    return query select x.status, x.lease_epoch, x.current_step,
                        (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id),
                        x.definition_fp::text;
end
$$;
