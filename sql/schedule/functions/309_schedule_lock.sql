-- Locks schedule `schedule_id` (waiting for a tick that holds it) and returns
-- it, or raises ScheduleNotFound (PB060).
create or replace function pgbatch._schedule_lock(schedule_id text)
returns pgbatch.schedule
language plpgsql
as $$
declare
    s pgbatch.schedule;
begin
    select * into s from pgbatch.schedule x where x.id = _schedule_lock.schedule_id for update;
    if not found then
        perform pgbatch._raise('PB060', format('schedule %s does not exist',
                                               coalesce(to_json(_schedule_lock.schedule_id)::text, 'NULL')));
    end if;
    return s;
end
$$;
