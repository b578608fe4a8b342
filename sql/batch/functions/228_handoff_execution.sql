-- T16, graceful shutdown with on_shutdown = 'handoff': the worker holding work
-- item `job_id` of execution `execution_id` (fenced, see _batch_fence), after
-- its last chunk commit, hands the execution back: STARTED -> STARTING,
-- handoff_count + 1, lease cleared, event `handoff`; the item is acked with
-- effects that enqueue a fresh work item for the same step, which the next
-- worker to claim it continues from the step's checkpoint (the same execution
-- and step row). A STOPPING execution ends STOPPED instead (the stop was
-- requested first). With `ack` false the caller acks the item in this
-- transaction with the returned `effects` (the worker's settler does).
-- Returns (status, next_job_id, effects).
create or replace function pgbatch.handoff_execution(execution_id bigint, job_id uuid, claim_token uuid,
    ack boolean default true)
returns table (status text, next_job_id uuid, effects jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    x     pgbatch.job_execution;
    v_id  uuid;
    v_fx  jsonb;
    v_now timestamptz := pgbatch.now();
begin
    x := pgbatch._batch_fence(handoff_execution.execution_id, handoff_execution.job_id, handoff_execution.claim_token);
    if x.status = 'STOPPING' then
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped', null, 'STOPPED',
                                      jsonb_build_object('step', x.current_step, 'at', 'shutdown'));
        if handoff_execution.ack then
            perform pgbatch.ack(handoff_execution.job_id, handoff_execution.claim_token);
        end if;
        return query select 'STOPPED'::text, null::uuid, null::jsonb;
        return;
    end if;
    v_id := pgbatch.uuid_v7();
    v_fx := jsonb_build_object('enqueue', jsonb_build_array(
        jsonb_build_object('queue', x.queue, 'id', v_id,
                           'payload', jsonb_build_object('kind', 'batch_step', 'execution_id', x.id,
                                                         'step', x.current_step))));
    if handoff_execution.ack then
        perform pgbatch.ack(handoff_execution.job_id, handoff_execution.claim_token, v_fx);
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', queue_job_id = v_id, lease_owner = null, lease_boot_id = null,
           lease_expires_at = null, handoff_count = e.handoff_count + 1, last_updated = v_now,
           version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, null, 'handoff', x.status, 'STARTING', null,
                                 jsonb_build_object('step', x.current_step, 'job_id', handoff_execution.job_id,
                                                    'next_job_id', v_id));
    return query select 'STARTING'::text, v_id, v_fx;
end
$$;
