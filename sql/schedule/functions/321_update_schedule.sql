-- Changes schedule `schedule_id`: every argument given (not NULL) replaces
-- that field; the rest stay. Giving `kind` clears the fields of the old kind
-- (give the new kind's: cron_expr, every/anchor or once_at); giving queue or
-- job_name switches the target. catchup_window => '0' removes the catch-up.
-- A change of the timing (kind, cron_expr, tz, every, anchor, once_at) moves
-- effective_from to now and recomputes next_due_at: a change never fires an
-- occurrence retroactively. A change that changes nothing is a no-op (the
-- version stays). Returns the schedule. Refusals change nothing:
-- ScheduleNotFound (PB060) and those of create_schedule.
create or replace function pgbatch.update_schedule(
    schedule_id       text,
    kind              text        default null,
    cron_expr         text        default null,
    tz                text        default null,
    every             interval    default null,
    anchor            timestamptz default null,
    once_at           timestamptz default null,
    queue             text        default null,
    payload           jsonb       default null,
    job_name          text        default null,
    params            jsonb       default null,
    misfire_threshold interval    default null,
    catchup_window    interval    default null,
    overlap_policy    text        default null
)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    v_now constant timestamptz := pgbatch.now();
    v_old pgbatch.schedule := pgbatch._schedule_lock(schedule_id);
    s     pgbatch.schedule := v_old;
begin
    if kind is not null and kind is distinct from v_old.kind then
        s.kind := kind;
        s.cron_expr := null;
        s.every := null;
        s.anchor := null;
        s.once_at := null;
    end if;
    s.cron_expr := coalesce(cron_expr, s.cron_expr);
    s.tz := coalesce(tz, s.tz);
    s.every := coalesce(every, s.every);
    s.anchor := coalesce(anchor, s.anchor);
    if s.kind = 'interval' and s.every is not null and s.anchor is null then
        s.anchor := v_now;
    end if;
    s.once_at := coalesce(once_at, s.once_at);
    if queue is not null then
        s.queue := queue;
        s.job_name := null;
        s.params := null;
        s.payload := coalesce(payload, case when v_old.target = 'queue' then v_old.payload end);
    elsif job_name is not null then
        s.job_name := job_name;
        s.queue := null;
        s.payload := null;
        s.params := coalesce(params, case when v_old.target = 'batch' then v_old.params end);
    else
        s.payload := coalesce(payload, s.payload);
        s.params := coalesce(params, s.params);
    end if;
    s.misfire_threshold := coalesce(misfire_threshold, s.misfire_threshold);
    s.catchup_window := coalesce(catchup_window, s.catchup_window);
    s.overlap_policy := coalesce(overlap_policy, s.overlap_policy);
    s := pgbatch._schedule_checked(s);
    if row(s.kind, s.cron_expr, s.tz, s.every, s.anchor, s.once_at, s.target, s.queue, s.payload,
           s.job_name, s.params, s.misfire_threshold, s.catchup_window, s.overlap_policy)
       is not distinct from
       row(v_old.kind, v_old.cron_expr, v_old.tz, v_old.every, v_old.anchor, v_old.once_at, v_old.target,
           v_old.queue, v_old.payload, v_old.job_name, v_old.params, v_old.misfire_threshold,
           v_old.catchup_window, v_old.overlap_policy) then
        return pgbatch._schedule_info(v_old);
    end if;
    if s.definition_hash <> v_old.definition_hash then
        s.effective_from := v_now;
        s.next_due_at := pgbatch._schedule_next_after(s, greatest(s.last_fire_at, v_now));
        if s.kind = 'once' and s.enabled is false and s.paused_at is null then
            s.enabled := true;  -- a once schedule that was decided, given a new instant
        end if;
    end if;
    s.version := v_old.version + 1;
    s.updated_at := v_now;
    update pgbatch.schedule x
       set kind = s.kind, cron_expr = s.cron_expr, tz = s.tz, every = s.every,
           anchor = s.anchor, once_at = s.once_at, target = s.target, queue = s.queue, payload = s.payload,
           job_name = s.job_name, params = s.params, misfire_threshold = s.misfire_threshold,
           catchup_window = s.catchup_window, overlap_policy = s.overlap_policy, enabled = s.enabled,
           effective_from = s.effective_from, next_due_at = s.next_due_at,
           definition_hash = s.definition_hash, version = s.version, updated_at = s.updated_at
     where x.id = s.id;
    return pgbatch._schedule_info(s);
end
$$;
