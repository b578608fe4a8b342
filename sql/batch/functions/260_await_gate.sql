-- T13, a worker reaches a gate step (BATCH.md §3, §4.4): the worker holding
-- work item `job_id` of execution `execution_id` (fenced, see _batch_fence),
-- after start_step of the gate step `gate_name` returned `run`, parks the
-- execution in one transaction: STARTED (or PAUSING) -> AWAITING_APPROVAL,
-- an approval row PENDING (requested_at now, expires_at now + `timeout` when
-- given, `on_timeout` 'reject' or 'approve' for the gate-timeout sweep), the
-- gate step stays STARTED, the lease is cleared, the work item is acked
-- without a follow-up (the execution has no work item until a decision),
-- event `awaiting_approval`, and NOTIFY pgbatch_batch_parked with the payload
-- of pgbatch.batch.parking (status AWAITING_APPROVAL, step and gate = the
-- gate's name). A STOPPING execution ends STOPPED instead (the stop was
-- requested first; the gate step STOPPED). With `ack` false the caller acks
-- the item in this transaction (the worker's settler does). Returns (status,
-- approval_id, requested_at, expires_at). InvalidExecutionState (PB048) when
-- `gate_name` is not a gate step of the execution's definition or the step is
-- not STARTED in this execution; InvalidArgument (PB007) for a timeout that
-- is not positive and finite (at most 10 years) or another on_timeout.
create or replace function pgbatch.await_gate(execution_id bigint, gate_name text, job_id uuid, claim_token uuid,
    timeout interval default null, on_timeout text default 'reject', ack boolean default true)
returns table (status text, approval_id bigint, requested_at timestamptz, expires_at timestamptz)
language plpgsql
as $$
#variable_conflict use_column
declare
    x         pgbatch.job_execution;
    s         pgbatch.step_execution;
    v_job     text;
    v_kind    text;
    v_expires timestamptz;
    v_id      bigint;
    v_now     timestamptz := pgbatch.now();
begin
    if await_gate.timeout is not null and (isfinite(await_gate.timeout) is not true
        or await_gate.timeout <= interval '0' or await_gate.timeout > interval '10 years') then
        perform pgbatch._raise('PB007', format('invalid argument: a gate timeout must be positive and at most 10 years, not %s',
                                               await_gate.timeout));
    end if;
    if await_gate.on_timeout is null or await_gate.on_timeout not in ('reject', 'approve') then
        perform pgbatch._raise('PB007', format('invalid argument: on_timeout must be reject or approve, not %s',
                                               coalesce(await_gate.on_timeout, 'NULL')));
    end if;
    x := pgbatch._batch_fence(await_gate.execution_id, await_gate.job_id, await_gate.claim_token);
    select i.job_name into v_job from pgbatch.job_instance i where i.id = x.instance_id;
    select d.value ->> 'kind' into v_kind
      from pgbatch.job_definition jd, jsonb_array_elements(jd.definition -> 'steps') d(value)
     where jd.fingerprint = x.definition_fp and jd.job_name = v_job and d.value ->> 'name' = await_gate.gate_name;
    if v_kind is distinct from 'gate' then
        perform pgbatch._raise('PB048', format('job execution %s has no gate step %s', x.id, to_json(await_gate.gate_name)));
    end if;
    select * into s from pgbatch.step_execution se
     where se.job_execution_id = x.id and se.step_name = await_gate.gate_name for update;
    if not found or s.status <> 'STARTED' then
        perform pgbatch._raise('PB048', format('gate step %s of job execution %s is %s, not STARTED',
                                               to_json(await_gate.gate_name), x.id, coalesce(s.status, 'not started')));
    end if;
    if x.status = 'STOPPING' then
        perform pgbatch._batch_finish(x.id, 'STOPPED', 'STOPPED', null, 'stopped', null, 'STOPPED',
                                      jsonb_build_object('step', s.step_name, 'at', 'gate'));
        if await_gate.ack then
            perform pgbatch.ack(await_gate.job_id, await_gate.claim_token);
        end if;
        return query select 'STOPPED'::text, null::bigint, null::timestamptz, null::timestamptz;
        return;
    end if;
    if exists (select 1 from pgbatch.approval a
                where a.job_execution_id = x.id and a.gate_name = await_gate.gate_name) then
        perform pgbatch._raise('PB048', format('gate %s of job execution %s was already reached',
                                               to_json(await_gate.gate_name), x.id));
    end if;
    v_expires := v_now + await_gate.timeout;
    insert into pgbatch.approval (job_execution_id, gate_name, status, requested_at, expires_at, on_timeout)
    values (x.id, await_gate.gate_name, 'PENDING', v_now, v_expires, await_gate.on_timeout)
    returning id into v_id;
    if await_gate.ack then
        perform pgbatch.ack(await_gate.job_id, await_gate.claim_token);
    end if;
    update pgbatch.job_execution e
       set status = 'AWAITING_APPROVAL', queue_job_id = null, current_step = s.step_name, lease_owner = null,
           lease_boot_id = null, lease_expires_at = null, pause_requested_at = null, last_updated = v_now,
           version = e.version + 1
     where e.id = x.id;
    perform pgbatch._batch_event(x.id, s.id, 'awaiting_approval', x.status, 'AWAITING_APPROVAL', null,
                                 jsonb_build_object('gate', s.step_name, 'approval_id', v_id, 'expires_at', v_expires,
                                                    'on_timeout', await_gate.on_timeout, 'job_id', await_gate.job_id));
    perform pg_notify('pgbatch_batch_parked', json_build_object(
        'execution_id', x.id, 'job_name', v_job, 'status', 'AWAITING_APPROVAL', 'step', s.step_name,
        'reason', null, 'gate', s.step_name, 'resume_at', null)::text);
    return query select 'AWAITING_APPROVAL'::text, v_id, v_now, v_expires;
end
$$;
