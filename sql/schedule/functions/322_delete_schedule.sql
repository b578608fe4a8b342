-- Deletes schedule `schedule_id` and its fire ledger (the queue jobs and
-- batch executions its fires started are left alone). Returns true, or
-- raises ScheduleNotFound (PB060).
create or replace function pgbatch.delete_schedule(schedule_id text)
returns boolean
language plpgsql
as $$
begin
    perform pgbatch._schedule_lock(schedule_id);
    delete from pgbatch.schedule x where x.id = delete_schedule.schedule_id;
    return true;
end
$$;
