-- Enqueues the next work item of an execution on its batch queue through the
-- queue's own path (_insert_jobs): payload {"kind": "batch_step",
-- "execution_id", "step"}. Records it as the execution's current work item
-- and returns its id. `taken`: the id of the job being acked, when called
-- from a hand-off.
create or replace function pgbatch._batch_enqueue(execution_id bigint, step_name text, taken uuid default null)
returns uuid
language plpgsql
as $$
declare
    v_queue text;
    v_id    uuid;
begin
    select x.queue into v_queue from pgbatch.job_execution x where x.id = _batch_enqueue.execution_id;
    v_id := (pgbatch._insert_jobs(
        array[null]::uuid[], array[v_queue],
        array[jsonb_build_object('kind', 'batch_step', 'execution_id', _batch_enqueue.execution_id,
                                 'step', _batch_enqueue.step_name)],
        array[null]::timestamptz[], array[0], array[null]::text[],
        array[(pgbatch.limits() ->> 'default_max_attempts')::integer], taken, false))[1];
    update pgbatch.job_execution x
       set queue_job_id = v_id, current_step = _batch_enqueue.step_name
     where x.id = _batch_enqueue.execution_id;
    return v_id;
end
$$;
