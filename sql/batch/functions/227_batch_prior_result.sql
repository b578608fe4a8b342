-- The (applied, status) an earlier operator call with the same `request_id`
-- returned for execution `execution_id`, as stored in its event, or no row.
create or replace function pgbatch._batch_prior_result(execution_id bigint, kind text, request_id text)
returns table (applied boolean, status text)
language sql
stable
as $$
    select true, e.to_status from pgbatch.execution_event e
     where e.job_execution_id = _batch_prior_result.execution_id and e.kind = _batch_prior_result.kind
       and e.request_id = _batch_prior_result.request_id
$$;
