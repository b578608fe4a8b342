-- What the worker holding work item `job_id` of execution `execution_id`
-- (fenced, see _batch_fence) should know at a step start and between chunk
-- commits: the execution's status, whether a stop or a pause was requested (a
-- tasklet's stop_requested()), and its job parameters as {name: value}.
-- Changes nothing.
create or replace function pgbatch.execution_control(execution_id bigint, job_id uuid, claim_token uuid)
returns table (status text, stop_requested boolean, pause_requested boolean, params jsonb)
language plpgsql
as $$
#variable_conflict use_column
declare
    x pgbatch.job_execution;
begin
    x := pgbatch._batch_fence(execution_control.execution_id, execution_control.job_id, execution_control.claim_token);
    return query select x.status, x.stop_requested_at is not null, x.pause_requested_at is not null,
                        coalesce((select jsonb_object_agg(p.key, p.value -> 'value') from jsonb_each(x.params) p), '{}');
end
$$;
