-- Starts the work of one fire of schedule `s` (in the caller's transaction):
-- target 'queue' enqueues the payload template plus {"schedule": {"id",
-- "source", "fire_at"}} on the schedule's queue, with a job id derived from
-- (schedule, source, fire_at) (_schedule_job_id); target 'batch' launches the job with the
-- parameter template plus the identifying parameters schedule (str) and
-- fire_at (datetime), and a request_id derived from the same triple, so the
-- job instance key is one more guard and a retry is idempotent. A refusal of
-- the SQL API (a PB error: a job no longer registered, a payload over the
-- limit, ...) is returned as `error` instead of raised, so one broken
-- schedule never blocks the others; any other error is raised.
create or replace function pgbatch._schedule_launch(s pgbatch.schedule, source text, fire_at timestamptz,
                                                    out job_id uuid, out job_execution_id bigint,
                                                    out error text)
language plpgsql
as $$
declare
    v_key   constant text := s.id || '|' || source || '|'
                             || to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_state text;
    v_msg   text;
begin
    begin
        if s.target = 'queue' then
            job_id := pgbatch.enqueue(
                queue => s.queue,
                payload => s.payload || jsonb_build_object('schedule', jsonb_build_object(
                    'id', s.id, 'source', source,
                    'fire_at', to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                id_override => pgbatch._schedule_job_id(s.id, source, fire_at));
        else
            job_execution_id := pgbatch.launch_job(
                job_name => s.job_name,
                params => s.params || jsonb_build_object(
                    'schedule', s.id,
                    'fire_at', jsonb_build_object('type', 'datetime', 'value',
                        to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                request_id => 'schedule|' || v_key);
            update pgbatch.job_execution x
               set schedule_id = s.id, fire_at = _schedule_launch.fire_at
             where x.id = job_execution_id;
        end if;
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
        if left(v_state, 2) <> 'PB' then
            raise;
        end if;
        job_id := null;
        job_execution_id := null;
        error := v_state || ': ' || v_msg;
    end;
end
$$;
