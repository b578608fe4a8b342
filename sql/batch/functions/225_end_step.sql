-- Ends step execution `step_execution_id` (STARTED) as `status` (COMPLETED,
-- FAILED, STOPPED or UNKNOWN), by the worker holding work item `job_id` (fenced, see
-- _batch_fence), with its exit code (default: the status), message and,
-- when given, a last `context` and job `job_context`. Then, in the same
-- transaction, the job:
--   FAILED / STOPPED step   the execution ends FAILED / STOPPED
--   UNKNOWN step            T21: a writer could not tell whether its output was
--                           written; the execution is UNKNOWN (not terminal, it
--                           blocks restarts) until recover_execution()
--   COMPLETED, last step    the execution ends COMPLETED (also when a stop was
--                           requested: the work is done, T8b)
--   COMPLETED, stop asked   the execution ends STOPPED (work remains, T8)
--   COMPLETED, more steps   hand-off: the work item is acked with effects
--                           that enqueue the next step's work item; the
--                           execution is STARTING until a worker claims it
-- In every case the work item is acked here, unless `ack` is false: then the
-- caller acks it in this transaction with the returned `effects` (a worker's
-- own settler does, so it knows the job is settled). Returns (job_status,
-- next_step, next_job_id, effects). InvalidExecutionState (PB048) for a step
-- that is not STARTED; InvalidArgument (PB007) for another status.
create or replace function pgbatch.end_step(step_execution_id bigint, job_id uuid, claim_token uuid,
    status text, exit_code text default null, exit_message text default null,
    context jsonb default null, job_context jsonb default null, ack boolean default true)
returns table (job_status text, next_step text, next_job_id uuid, effects jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    s       pgbatch.step_execution;
    x       pgbatch.job_execution;
    v_next  text;
    v_id    uuid;
    v_now   timestamptz := pgbatch.now();
    v_final text;
    v_fx    jsonb;
begin
    if end_step.status is null or end_step.status not in ('COMPLETED', 'FAILED', 'STOPPED', 'UNKNOWN') then
        perform pgbatch._raise('PB007', format('invalid argument: a step ends COMPLETED, FAILED, STOPPED or UNKNOWN, not %s',
                                               coalesce(end_step.status, 'NULL')));
    end if;
    select * into s from pgbatch.step_execution se where se.id = end_step.step_execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('step execution %s not found', end_step.step_execution_id));
    end if;
    x := pgbatch._batch_fence(s.job_execution_id, end_step.job_id, end_step.claim_token);
    select * into s from pgbatch.step_execution se where se.id = end_step.step_execution_id for update;
    if s.status <> 'STARTED' then
        perform pgbatch._raise('PB048', format('step execution %s is %s, not STARTED', s.id, s.status));
    end if;
    update pgbatch.step_execution se
       set status = end_step.status, exit_code = coalesce(end_step.exit_code, end_step.status),
           exit_message = end_step.exit_message, end_time = v_now, last_updated = v_now, version = se.version + 1
     where se.id = s.id;
    if end_step.context is not null then
        update pgbatch.step_execution_context c set context = end_step.context where c.step_execution_id = s.id;
    end if;
    if end_step.job_context is not null then
        update pgbatch.job_execution_context c set context = end_step.job_context where c.job_execution_id = x.id;
    end if;

    select d.value ->> 'name' into v_next
      from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') with ordinality d(value, ord)
     where jd.fingerprint = x.definition_fp
       and jd.job_name = (select i.job_name from pgbatch.job_instance i where i.id = x.instance_id)
       and d.ord = s.step_index + 2;

    if end_step.status = 'UNKNOWN' then
        update pgbatch.job_execution e
           set status = 'UNKNOWN', exit_code = coalesce(end_step.exit_code, 'UNKNOWN'),
               exit_message = end_step.exit_message, lease_owner = null, lease_boot_id = null,
               lease_expires_at = null, last_updated = v_now, version = e.version + 1
         where e.id = x.id;
        perform pgbatch._batch_event(x.id, s.id, 'unknown', x.status, 'UNKNOWN', null,
                                     jsonb_build_object('step', s.step_name, 'message', end_step.exit_message));
        v_final := 'UNKNOWN';
    elsif end_step.status in ('FAILED', 'STOPPED') then
        v_final := pgbatch._batch_finish(x.id, end_step.status, coalesce(end_step.exit_code, end_step.status),
                                         end_step.exit_message, lower(end_step.status),
                                         detail => jsonb_build_object('step', s.step_name));
    elsif v_next is null then
        v_final := pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, 'completed',
                                         detail => jsonb_build_object('step', s.step_name));
    elsif x.status = 'STOPPING' then
        v_final := pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped',
                                         detail => jsonb_build_object('step', s.step_name, 'next_step', v_next));
    end if;
    if v_final is not null then
        if end_step.ack then
            perform pgbatch.ack(end_step.job_id, end_step.claim_token);
        end if;
        return query select v_final, null::text, null::uuid, null::jsonb;
        return;
    end if;

    v_id := pgbatch.uuid_v7();
    v_fx := jsonb_build_object('enqueue', jsonb_build_array(
        jsonb_build_object('queue', x.queue, 'id', v_id,
                           'payload', jsonb_build_object('kind', 'batch_step', 'execution_id', x.id, 'step', v_next))));
    if end_step.ack then
        perform pgbatch.ack(end_step.job_id, end_step.claim_token, v_fx);
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', queue_job_id = v_id, current_step = v_next, lease_owner = null,
           lease_boot_id = null, lease_expires_at = null, last_updated = v_now, version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'step_handoff', x.status, 'STARTING', null,
                                 jsonb_build_object('step', s.step_name, 'next_step', v_next, 'job_id', v_id));
    return query select 'STARTING'::text, v_next, v_id, v_fx;
end
$$;
