-- History: the events of execution `execution_id`, oldest first.
-- JobExecutionNotFound (PB047) for an unknown execution.
create or replace function pgbatch.execution_events(execution_id bigint)
returns table (event_id bigint, step_execution_id bigint, at timestamptz, kind text, from_status text,
               to_status text, actor text, request_id text, detail jsonb)
language plpgsql
stable
as $$
begin
    perform 1 from pgbatch.job_execution x where x.id = execution_events.execution_id;
    if not found then
        perform pgbatch._raise('PB047', format('job execution %s not found', execution_events.execution_id));
    end if;
    return query
    select e.id, e.step_execution_id, e.at, e.kind, e.from_status, e.to_status, e.actor, e.request_id, e.detail
      from pgbatch.execution_event e
     where e.job_execution_id = execution_events.execution_id
     order by e.id;
end
$$;
