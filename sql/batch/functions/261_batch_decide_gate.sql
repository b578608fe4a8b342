-- T14 / T15, the decision on a gate (BATCH.md §3, §4.4), shared by
-- approve_gate, reject_gate and the gate-timeout sweep (expire_gates): one
-- transaction, a double compare-and-set on the approval row (PENDING ->
-- APPROVED / REJECTED) and the execution (AWAITING_APPROVAL -> STARTING /
-- FAILED), both rows locked, the execution's first. `decision` is 'APPROVED'
-- or 'REJECTED'.
--   APPROVED  the gate step COMPLETED (exit APPROVED); the execution is
--             STARTING with a work item for the step after the gate, or
--             COMPLETED when the gate is the last step
--   REJECTED  the gate step FAILED (exit APPROVAL_REJECTED); the execution
--             ends FAILED (exit APPROVAL_REJECTED), restartable: a restart
--             asks again
-- decided_by = `actor` (default: the session user), decided_at, `comment`;
-- one event `event_kind` ('approve' / 'reject') with `request_id`. Returns
-- (applied, status, execution_status): status is the approval's status after
-- the call. A decided or EXPIRED approval (another decision, a stop, an
-- abandon or a timeout came first) is applied = false with its status,
-- changing nothing; a repeated call with the same `request_id` returns the
-- first call's result. JobExecutionNotFound (PB047); UnknownGate (PB055) for
-- a name that is no gate step of the execution's job; GateNotPending (PB056)
-- when the execution never reached that gate; InvalidArgument (PB007) for an
-- actor over 200 or a comment over 10000 characters.
create or replace function pgbatch._batch_decide_gate(execution_id bigint, gate_name text, decision text,
    actor text, comment text, request_id text, event_kind text, detail jsonb default '{}')
returns table (applied boolean, status text, execution_status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x      pgbatch.job_execution;
    a      pgbatch.approval;
    s      pgbatch.step_execution;
    v_job  text;
    v_def  jsonb;
    v_next text;
    v_by   text := coalesce(_batch_decide_gate.actor, session_user);
    v_code text;
    v_msg  text;
    v_fx   jsonb;
    v_now  timestamptz := pgbatch.now();
begin
    if length(_batch_decide_gate.actor) > 200 then
        perform pgbatch._raise('PB007', 'invalid argument: actor must be at most 200 characters');
    end if;
    if length(_batch_decide_gate.comment) > 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: comment must be at most 10000 characters');
    end if;
    -- An execution AWAITING_APPROVAL has no work item, so its row is the first
    -- lock (then the approval's, as stop and abandon take them); a call that
    -- finds it in another status only reads, and never waits for a work item
    -- while holding the row (see _batch_lock_operator).
    select * into x from pgbatch.job_execution e where e.id = _batch_decide_gate.execution_id for update;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', _batch_decide_gate.execution_id));
    end if;
    if _batch_decide_gate.request_id is not null then
        return query select true, e.detail ->> 'approval_status', e.to_status from pgbatch.execution_event e
                      where e.job_execution_id = x.id and e.kind = _batch_decide_gate.event_kind
                        and e.request_id = _batch_decide_gate.request_id;
        if found then
            return;
        end if;
    end if;
    select i.job_name into v_job from pgbatch.job_instance i where i.id = x.instance_id;
    select jd.definition -> 'steps' into v_def from pgbatch.job_definition jd
     where jd.fingerprint = x.definition_fp and jd.job_name = v_job;
    if not exists (select 1 from jsonb_array_elements(v_def) d(value)
                    where d.value ->> 'name' = _batch_decide_gate.gate_name and d.value ->> 'kind' = 'gate') then
        perform pgbatch._raise('PB055', format('job %s of execution %s has no gate %s', to_json(v_job), x.id,
                                               to_json(_batch_decide_gate.gate_name)),
                               (select format('its gates: %s', coalesce(string_agg(d.value ->> 'name', ', '), 'none'))
                                  from jsonb_array_elements(v_def) d(value) where d.value ->> 'kind' = 'gate'));
    end if;
    select * into a from pgbatch.approval ap
     where ap.job_execution_id = x.id and ap.gate_name = _batch_decide_gate.gate_name for update;
    if not found then
        perform pgbatch._raise('PB056', format('gate %s of execution %s is not awaiting a decision',
                                               to_json(_batch_decide_gate.gate_name), x.id),
                               format('the execution is %s and has not reached the gate', x.status));
    end if;
    if a.status <> 'PENDING' or x.status <> 'AWAITING_APPROVAL' then
        return query select false, a.status, x.status;
        return;
    end if;
    update pgbatch.approval ap
       set status = _batch_decide_gate.decision, decided_by = v_by, decided_at = v_now,
           comment = _batch_decide_gate.comment
     where ap.id = a.id and ap.status = 'PENDING';
    if not found then
        return query select false, a.status, x.status;
        return;
    end if;
    select * into s from pgbatch.step_execution se
     where se.job_execution_id = x.id and se.step_name = a.gate_name for update;
    detail := coalesce(_batch_decide_gate.detail, '{}') || jsonb_build_object(
        'gate', a.gate_name, 'approval_id', a.id, 'approval_status', _batch_decide_gate.decision,
        'decided_by', v_by, 'comment', _batch_decide_gate.comment);
    if _batch_decide_gate.decision = 'APPROVED' then
        v_code := 'APPROVED';
    else
        v_code := 'APPROVAL_REJECTED';
        v_msg := format('gate %s rejected by %s', a.gate_name, v_by)
                 || coalesce(': ' || _batch_decide_gate.comment, '');
    end if;
    update pgbatch.step_execution se
       set status = case when _batch_decide_gate.decision = 'APPROVED' then 'COMPLETED' else 'FAILED' end,
           exit_code = v_code, exit_message = v_msg, end_time = v_now, last_updated = v_now, version = se.version + 1
     where se.id = s.id and se.status = 'STARTED';
    if _batch_decide_gate.decision = 'REJECTED' then
        perform pgbatch._batch_finish(x.id, 'FAILED', 'APPROVAL_REJECTED', v_msg, _batch_decide_gate.event_kind,
                                      _batch_decide_gate.request_id, null, detail);
        return query select true, 'REJECTED'::text, 'FAILED'::text;
        return;
    end if;
    select d.value ->> 'name' into v_next
      from jsonb_array_elements(v_def) with ordinality d(value, ord)
     where d.ord = s.step_index + 2;
    if v_next is null then
        perform pgbatch._batch_finish(x.id, 'COMPLETED', 'COMPLETED', null, _batch_decide_gate.event_kind,
                                      _batch_decide_gate.request_id, null, detail);
        return query select true, 'APPROVED'::text, 'COMPLETED'::text;
        return;
    end if;
    update pgbatch.job_execution e
       set status = 'STARTING', last_updated = v_now, version = e.version + 1
     where e.id = x.id and e.status = 'AWAITING_APPROVAL';
    perform pgbatch._batch_enqueue(x.id, v_next);
    perform pgbatch._batch_event(x.id, s.id, _batch_decide_gate.event_kind, 'AWAITING_APPROVAL', 'STARTING',
                                 _batch_decide_gate.request_id, detail || jsonb_build_object('next_step', v_next));
    return query select true, 'APPROVED'::text, 'STARTING'::text;
end
$$;
