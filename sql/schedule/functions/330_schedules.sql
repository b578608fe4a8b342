-- The schedules and their state (next due time, watermark, last outcome,
-- coalesced count), by name; only `schedule_id` when given (then
-- ScheduleNotFound, PB060, if there is none).
create or replace function pgbatch.schedules(schedule_id text default null)
returns setof pgbatch.schedule_info
language plpgsql
stable
as $$
begin
    if schedule_id is not null
       and not exists (select 1 from pgbatch.schedule x where x.id = schedules.schedule_id) then
        perform pgbatch._raise('PB060', format('schedule %s does not exist', to_json(schedule_id)));
    end if;
    return query
        select i.*
          from pgbatch.schedule x, lateral pgbatch._schedule_info(x) i
         where schedules.schedule_id is null or x.id = schedules.schedule_id
         order by x.id;
end
$$;
