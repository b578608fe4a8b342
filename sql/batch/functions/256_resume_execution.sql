-- T12 resume (BATCH.md §3, §4.3): a PAUSED execution -> STARTING; the same
-- execution and the same step row continue from the step's checkpoint
-- (_batch_resume: resume_count + 1, a fresh work item, event `resumed`).
-- Returns (applied, status): applied = false, changing nothing, when the
-- execution is not PAUSED (e.g. STARTING or STARTED after another resume won
-- the race, STOPPED after a stop did). A repeated call with the same
-- `request_id` returns the first one's result and writes no event.
-- JobExecutionNotFound (PB047); JobDefinitionChangedError (PB049) when the
-- job's definition changed while it was paused, unless
-- `allow_definition_change` (then the steps are matched by name; a current
-- step the new definition lacks ends it FAILED, exit STEP_MISSING).
create or replace function pgbatch.resume_execution(execution_id bigint, request_id text default null,
    allow_definition_change boolean default false)
returns table (applied boolean, status text)
language plpgsql
as $$
#variable_conflict use_column
declare
    x pgbatch.job_execution;
begin
    x := pgbatch._batch_lock_operator(resume_execution.execution_id);
    if resume_execution.request_id is not null then
        return query select * from pgbatch._batch_prior_result(x.id, 'resumed', resume_execution.request_id);
        if found then
            return;
        end if;
    end if;
    return query select * from pgbatch._batch_resume(x.id, resume_execution.request_id,
                                                     resume_execution.allow_definition_change, 'operator');
end
$$;
