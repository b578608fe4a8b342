-- pgbatch migration 0021_gates: approval gates that survive restarts (BATCH.md
-- §4.4, docs/batch-gates.md). approval gains on_timeout and an index of
-- pending approvals by expiry; new functions await_gate (a worker parks an
-- execution at a gate, T13), _batch_decide_gate, approve_gate and
-- reject_gate (T14/T15, one double compare-and-set), approvals (the listing)
-- and expire_gates (the gate-timeout sweep), with their privileges.
-- FROZEN: never edit this file after release; 0021_gates.py pins its sha256.

-- ==== batch/schema/260_batch_gates.sql ====
-- Approval gates (BATCH.md §4.4, docs/batch-gates.md): each approval row
-- keeps the timeout rule in force when its gate was reached, so a decision
-- taken after any restart of workers or of the server applies the same rule.
-- on_timeout: what the gate-timeout sweep (expire_gates) decides once
-- expires_at has passed without a decision ('reject' or 'approve').
alter table pgbatch.approval add column if not exists on_timeout text not null default 'reject'
    check (on_timeout in ('reject', 'approve'));
-- The gate-timeout sweep's scan: pending approvals by expiry.
create index if not exists approval_pending_expiry on pgbatch.approval (expires_at)
    where status = 'PENDING' and expires_at is not null;

-- ==== batch/functions/260_await_gate.sql ====
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

-- ==== batch/functions/261_batch_decide_gate.sql ====
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

-- ==== batch/functions/262_approve_gate.sql ====
-- T14 (BATCH.md §3, §10): approve gate `gate_name` of execution
-- `execution_id`, which waits AWAITING_APPROVAL at it. In one transaction
-- (a double compare-and-set, see _batch_decide_gate): the approval PENDING ->
-- APPROVED (decided_by `actor`, default the session user; decided_at;
-- `comment`), the gate step COMPLETED (exit APPROVED), the execution
-- STARTING with a work item for the step after the gate (COMPLETED when the
-- gate is the last step), event `approve`. Returns (applied, status,
-- execution_status), status being the approval's: (true, APPROVED, STARTING)
-- when this call decided; (false, <its status>, <the execution's>) changing
-- nothing when the approval was already APPROVED, REJECTED or EXPIRED (a
-- concurrent decision, a stop or abandon, or the timeout came first). A
-- repeated call with the same `request_id` returns the first call's result
-- and writes no event. JobExecutionNotFound (PB047), UnknownGate (PB055),
-- GateNotPending (PB056), InvalidArgument (PB007).
create or replace function pgbatch.approve_gate(execution_id bigint, gate_name text, actor text default null,
    comment text default null, request_id text default null)
returns table (applied boolean, status text, execution_status text)
language sql
as $$
    select * from pgbatch._batch_decide_gate(approve_gate.execution_id, approve_gate.gate_name, 'APPROVED',
                                             approve_gate.actor, approve_gate.comment, approve_gate.request_id,
                                             'approve')
$$;

-- ==== batch/functions/263_reject_gate.sql ====
-- T15 (BATCH.md §3, §10): reject gate `gate_name` of execution
-- `execution_id`, which waits AWAITING_APPROVAL at it. In one transaction
-- (a double compare-and-set, see _batch_decide_gate): the approval PENDING ->
-- REJECTED (decided_by `actor`, default the session user; decided_at;
-- `comment`), the gate step FAILED (exit APPROVAL_REJECTED), the execution
-- FAILED (exit APPROVAL_REJECTED; a restart asks again), event `reject`.
-- Returns (applied, status, execution_status) as approve_gate does: (true,
-- REJECTED, FAILED) when this call decided. JobExecutionNotFound (PB047),
-- UnknownGate (PB055), GateNotPending (PB056), InvalidArgument (PB007).
create or replace function pgbatch.reject_gate(execution_id bigint, gate_name text, actor text default null,
    comment text default null, request_id text default null)
returns table (applied boolean, status text, execution_status text)
language sql
as $$
    select * from pgbatch._batch_decide_gate(reject_gate.execution_id, reject_gate.gate_name, 'REJECTED',
                                             reject_gate.actor, reject_gate.comment, reject_gate.request_id,
                                             'reject')
$$;

-- ==== batch/functions/264_approvals.sql ====
-- The approvals of gates, for operators: `status` PENDING (the inbox: what
-- waits for a decision), DECIDED (APPROVED, REJECTED or EXPIRED: who decided
-- and when), one of APPROVED, REJECTED, EXPIRED, or NULL for all; newest
-- first, at most `limit` (1 to 10000). InvalidArgument (PB007) otherwise.
-- decided_by 'timeout' marks a decision of the gate-timeout sweep. The
-- column approval_status is the approval's status.
create or replace function pgbatch.approvals(status text default null, "limit" integer default 100)
returns table (approval_id bigint, execution_id bigint, job_name text, gate_name text, approval_status text,
               execution_status text, requested_at timestamptz, expires_at timestamptz, on_timeout text,
               decided_by text, decided_at timestamptz, comment text)
language plpgsql
stable
as $$
begin
    if approvals."limit" is null or approvals."limit" not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: limit must be 1 to 10000');
    end if;
    if approvals.status is not null
       and approvals.status not in ('PENDING', 'DECIDED', 'APPROVED', 'REJECTED', 'EXPIRED') then
        perform pgbatch._raise('PB007', format('invalid argument: status must be PENDING, DECIDED, APPROVED, '
                                               'REJECTED or EXPIRED, not %s', to_json(approvals.status)));
    end if;
    return query
    select a.id, a.job_execution_id, i.job_name, a.gate_name, a.status, x.status, a.requested_at, a.expires_at,
           a.on_timeout, a.decided_by, a.decided_at, a.comment
      from pgbatch.approval a
      join pgbatch.job_execution x on x.id = a.job_execution_id
      join pgbatch.job_instance i on i.id = x.instance_id
     where approvals.status is null or a.status = approvals.status
        or (approvals.status = 'DECIDED' and a.status <> 'PENDING')
     order by a.id desc
     limit approvals."limit";
end
$$;

-- ==== batch/functions/265_expire_gates.sql ====
-- The gate-timeout sweep (BATCH.md §4.4): every node's gate-timeout service
-- calls it. Each PENDING approval whose expires_at has passed (database
-- time) while its execution waits AWAITING_APPROVAL gets its gate's
-- on_timeout decision: 'reject' -> T15 (the execution FAILED,
-- APPROVAL_REJECTED), 'approve' -> T14, decided_by 'timeout', event
-- `reject` / `approve` with request_id 'gate-timeout:<approval id>' and
-- detail timeout = true. Rows are taken with FOR UPDATE SKIP LOCKED and the
-- decision is the same double compare-and-set as approve_gate's, so each
-- timeout is applied exactly once however many nodes sweep, and a decision
-- that commits first wins. At most `batch_size` (1 to 10000, else
-- InvalidArgument, PB007) per call; returns how many it decided.
create or replace function pgbatch.expire_gates(batch_size integer default 100)
returns integer
language plpgsql
as $$
declare
    r     record;
    v_n   integer := 0;
    v_res record;
begin
    if expire_gates.batch_size is null or expire_gates.batch_size not between 1 and 10000 then
        perform pgbatch._raise('PB007', 'invalid argument: batch_size must be 1 to 10000');
    end if;
    for r in
        select a.id, a.job_execution_id, a.gate_name, a.on_timeout, a.expires_at
          from pgbatch.approval a join pgbatch.job_execution x on x.id = a.job_execution_id
         where a.status = 'PENDING' and a.expires_at is not null and a.expires_at <= pgbatch.now()
           and x.status = 'AWAITING_APPROVAL'
         order by a.expires_at, a.id
         limit expire_gates.batch_size
           for update of a, x skip locked
    loop
        select * into v_res
          from pgbatch._batch_decide_gate(r.job_execution_id, r.gate_name,
                                          case r.on_timeout when 'approve' then 'APPROVED' else 'REJECTED' end,
                                          'timeout',
                                          format('no decision before %s (on_timeout %s)', r.expires_at, r.on_timeout),
                                          'gate-timeout:' || r.id,
                                          case r.on_timeout when 'approve' then 'approve' else 'reject' end,
                                          jsonb_build_object('timeout', true));
        if v_res.applied then
            v_n := v_n + 1;
        end if;
    end loop;
    return v_n;
end
$$;

-- ==== batch/privileges/041_gate_access.sql ====
-- Who may execute the approval-gate functions (docs/roles.md,
-- docs/batch-gates.md): workers park executions at gates and sweep gate
-- timeouts; admins decide gates and list approvals.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('await_gate',    'worker', true),
    ('expire_gates',  'worker', true),
    ('approve_gate',  'admin',  true),
    ('reject_gate',   'admin',  true),
    ('approvals',     'admin',  true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

select pgbatch._apply_privileges();
