-- Creates schedule `schedule_id` (docs/schedules.md) and returns it. Kind
-- 'cron' needs cron_expr (evaluated in tz), 'interval' needs every (at least
-- a second, no months; occurrences anchor + k * every in UTC, anchor
-- defaulting to now), 'once' needs once_at, 'manual' fires only through
-- trigger_schedule. The target is a queue job (queue, payload template: a
-- JSON object, default {}) or a batch job launch (job_name, params template,
-- default {}). misfire_threshold: lateness still on time; catchup_window:
-- how old a missed occurrence may be and still fire once (NULL or 0: not
-- beyond the threshold); overlap_policy: allow, skip or queue. A new
-- schedule does not catch up its past: occurrences count from now. Refusals
-- change nothing: ScheduleAlreadyExists (PB062) and those of
-- _schedule_checked (PB061, PB020, PB021, PB013, PB005, PB006, PB040, PB042).
create or replace function pgbatch.create_schedule(
    schedule_id       text,
    kind              text,
    cron_expr         text        default null,
    tz                text        default 'UTC',
    every             interval    default null,
    anchor            timestamptz default null,
    once_at           timestamptz default null,
    queue             text        default null,
    payload           jsonb       default null,
    job_name          text        default null,
    params            jsonb       default null,
    misfire_threshold interval    default '60 seconds',
    catchup_window    interval    default null,
    overlap_policy    text        default 'allow',
    enabled           boolean     default true
)
returns pgbatch.schedule_info
language plpgsql
as $$
declare
    v_now constant timestamptz := pgbatch.now();
    s pgbatch.schedule;
begin
    s.id := schedule_id;
    s.kind := kind;
    s.cron_expr := cron_expr;
    s.tz := coalesce(tz, 'UTC');
    s.every := every;
    s.anchor := case when kind = 'interval' and every is not null then coalesce(anchor, v_now) else anchor end;
    s.once_at := once_at;
    s.queue := queue;
    s.payload := payload;
    s.job_name := job_name;
    s.params := params;
    s.misfire_threshold := misfire_threshold;
    s.catchup_window := catchup_window;
    s.overlap_policy := overlap_policy;
    s := pgbatch._schedule_checked(s);
    s.enabled := coalesce(enabled, true);
    s.paused_at := case when s.enabled then null else v_now end;
    s.effective_from := v_now;
    s.coalesced_total := 0;
    s.version := 0;
    s.created_at := v_now;
    s.updated_at := v_now;
    s.next_due_at := pgbatch._schedule_next_after(s, v_now);
    insert into pgbatch.schedule select (s).* on conflict (id) do nothing;
    if not found then
        perform pgbatch._raise('PB062', format('schedule %s already exists', to_json(schedule_id)),
                               'change it with update_schedule, or delete_schedule it first');
    end if;
    return pgbatch._schedule_info(s);
end
$$;
