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
