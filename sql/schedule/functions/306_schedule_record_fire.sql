-- Records one decided fire of schedule `s` in the ledger and, for outcome
-- 'fired', starts its work (_schedule_launch) in the same transaction; a
-- refused launch turns the outcome into 'failed' with the error. A queue
-- target's row is written with its job id (_schedule_job_id) and needs no
-- second write when the enqueue succeeds. Returns the row, or NULL when the
-- ledger already holds (schedule, source, fire_at) or the request_id.
create or replace function pgbatch._schedule_record_fire(s pgbatch.schedule, source text, fire_at timestamptz,
                                                         outcome text, coalesced_count integer,
                                                         coalesced_capped boolean, node_id text,
                                                         request_id text, decided_at timestamptz)
returns pgbatch.schedule_fire
language plpgsql
as $$
declare
    v_fire   pgbatch.schedule_fire;
    v_launch record;
begin
    insert into pgbatch.schedule_fire as f
        (schedule_id, source, fire_at, outcome, coalesced_count, coalesced_capped, job_id, node_id,
         request_id, decided_at)
    values (s.id, source, fire_at, outcome, coalesced_count, coalesced_capped,
            case when outcome = 'fired' and s.target = 'queue'
                 then pgbatch._schedule_job_id(s.id, source, fire_at) end,
            node_id, request_id, decided_at)
    on conflict do nothing
    returning f.* into v_fire;
    if not found then
        return null;
    end if;
    if v_fire.outcome = 'fired' then
        v_launch := pgbatch._schedule_launch(s, source, fire_at);
        if v_launch.error is null and v_launch.job_execution_id is null
           and v_launch.job_id = v_fire.job_id then
            return v_fire;            -- the queue job the row names: nothing to add
        end if;
        update pgbatch.schedule_fire f
           set job_id = v_launch.job_id, job_execution_id = v_launch.job_execution_id,
               error = v_launch.error,
               outcome = case when v_launch.error is null then 'fired' else 'failed' end
         where f.schedule_id = s.id and f.source = _schedule_record_fire.source
           and f.fire_at = _schedule_record_fire.fire_at
        returning f.* into v_fire;
    end if;
    return v_fire;
end
$$;
