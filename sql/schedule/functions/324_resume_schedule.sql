-- Resumes paused schedule `schedule_id`. catch_up false (default): the
-- occurrences of the pause are skipped (effective_from = now; the next fire
-- is the first occurrence after now). catch_up true: the latest occurrence
-- missed during the pause fires once at the next tick if it is within the
-- schedule's window (misfire_threshold, catchup_window), as after any
-- downtime. Resuming a schedule that is not paused changes nothing. Returns
-- the schedule; ScheduleNotFound (PB060).
create or replace function pgbatch.resume_schedule(schedule_id text, catch_up boolean default false)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    v_now constant timestamptz := pgbatch.now();
    s pgbatch.schedule := pgbatch._schedule_lock(schedule_id);
begin
    if s.paused_at is null then
        return pgbatch._schedule_info(s);
    end if;
    s.enabled := true;
    s.paused_at := null;
    if not coalesce(catch_up, false) then
        s.effective_from := greatest(s.effective_from, v_now);
    end if;
    s.next_due_at := pgbatch._schedule_next_after(s, greatest(s.last_fire_at, s.effective_from));
    update pgbatch.schedule x
       set enabled = true, paused_at = null, effective_from = s.effective_from, next_due_at = s.next_due_at,
           version = x.version + 1, updated_at = v_now
     where x.id = s.id
    returning * into s;
    return pgbatch._schedule_info(s);
end
$$;
