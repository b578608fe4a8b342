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
