-- Appends one event to an execution's audit trail (I7: one per successful
-- state change). Returns false, inserting nothing, when an event of the same
-- kind and request_id already exists for the execution.
create or replace function pgbatch._batch_event(execution_id bigint, step_execution_id bigint, kind text,
    from_status text, to_status text, request_id text default null, detail jsonb default null)
returns boolean
language plpgsql
as $$
begin
    insert into pgbatch.execution_event as e
        (job_execution_id, step_execution_id, at, kind, from_status, to_status, actor, request_id, detail)
    values (_batch_event.execution_id, _batch_event.step_execution_id, pgbatch.now(), _batch_event.kind,
            _batch_event.from_status, _batch_event.to_status, session_user, _batch_event.request_id,
            _batch_event.detail)
    on conflict on constraint execution_event_job_execution_id_kind_request_id_key do nothing;
    return found;
end
$$;
