-- Pauses schedule `schedule_id`: no occurrence fires until resume_schedule
-- (enabled = false, paused_at = now). Pausing a paused schedule changes
-- nothing. Returns the schedule; ScheduleNotFound (PB060).
create or replace function pgbatch.pause_schedule(schedule_id text)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    s pgbatch.schedule := pgbatch._schedule_lock(schedule_id);
begin
    if s.paused_at is not null then
        return pgbatch._schedule_info(s);
    end if;
    update pgbatch.schedule x
       set enabled = false, paused_at = pgbatch.now(), version = x.version + 1, updated_at = pgbatch.now()
     where x.id = s.id
    returning * into s;
    return pgbatch._schedule_info(s);
end
$$;
