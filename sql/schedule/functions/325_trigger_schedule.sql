-- Fires schedule `schedule_id` now, whatever its kind and state (paused
-- too): a ledger row with source 'manual' and fire_at = now, and its queue
-- job or batch launch, in one transaction. The watermark does not move. With
-- `request_id` (at most 200 characters), a repeated call returns the first
-- call's fire and fires nothing. Returns the fire; ScheduleNotFound (PB060).
create or replace function pgbatch.trigger_schedule(schedule_id text, request_id text default null)
returns pgbatch.schedule_fire_info
language plpgsql
as $$
declare
    v_now  constant timestamptz := pgbatch.now();
    s      pgbatch.schedule;
    v_at   timestamptz := v_now;
    v_fire pgbatch.schedule_fire;
begin
    if length(request_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid request_id: longer than 200 characters');
    end if;
    s := pgbatch._schedule_lock(schedule_id);
    loop
        if request_id is not null then
            select * into v_fire from pgbatch.schedule_fire f
             where f.schedule_id = s.id and f.request_id = trigger_schedule.request_id;
            if found then
                return pgbatch._schedule_fire_info(v_fire);
            end if;
        end if;
        v_fire := pgbatch._schedule_record_fire(s, 'manual', v_at, 'fired', 0, false, null,
                                                trigger_schedule.request_id, v_now);
        exit when v_fire.schedule_id is not null;
        if v_at >= v_now + interval '1 second' then
            raise exception using errcode = 'P0004',
                message = format('schedule %s: no free manual fire instant near %s', s.id, v_now);
        end if;
        v_at := v_at + interval '1 microsecond';  -- two triggers at one instant (the test clock)
    end loop;
    update pgbatch.schedule x set last_outcome = v_fire.outcome, last_decided_at = v_now where x.id = s.id;
    return pgbatch._schedule_fire_info(v_fire);
end
$$;
