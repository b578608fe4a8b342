-- The fire history of schedule `schedule_id`, newest decision first, at most
-- `limit` rows (1 to 10000): each fire's source, occurrence, outcome,
-- coalesced count, the queue job or batch execution it started and that
-- run's state (run_status: pending, running, succeeded, failed, cancelled,
-- stopped, abandoned; NULL when nothing ran or the record is gone).
-- ScheduleNotFound (PB060), InvalidArgument (PB007).
create or replace function pgbatch.schedule_fires(schedule_id text, "limit" integer default 50)
returns setof pgbatch.schedule_fire_info
language plpgsql
stable
as $$
begin
    if "limit" is null or "limit" < 1 or "limit" > 10000 then
        perform pgbatch._raise('PB007', format('invalid limit: %s, must be 1 to 10000',
                                               coalesce("limit"::text, 'NULL')));
    end if;
    if not exists (select 1 from pgbatch.schedule x where x.id = schedule_fires.schedule_id) then
        perform pgbatch._raise('PB060', format('schedule %s does not exist',
                                               coalesce(to_json(schedule_id)::text, 'NULL')));
    end if;
    return query
        select i.*
          from pgbatch.schedule_fire f, lateral pgbatch._schedule_fire_info(f) i
         where f.schedule_id = schedule_fires.schedule_id
         order by f.decided_at desc, f.fire_at desc
         limit "limit";
end
$$;
