-- The scheduler's tick (BATCH.md §9.2, docs/schedules.md), one call = one
-- transaction, on every worker node about every second. Locks up to
-- `max_schedules` (1 to 10000) enabled schedules due by database time
-- (pgbatch.now()) with FOR UPDATE SKIP LOCKED (another node's tick takes the
-- others), and for each: the occurrences in (greatest(watermark,
-- effective_from), now]; none: only next_due_at is recomputed. Otherwise the
-- latest occurrence o* is decided once, the older ones are counted as
-- coalesced:
--   now - o* <= greatest(misfire_threshold, catchup_window)
--       overlap_policy 'skip' and a previous fire's run still active -> skipped_overlap
--       overlap_policy 'queue' and a previous fire's run still active -> not decided yet:
--           looked at again a second later (the window still applies)
--       else -> fired: the ledger row, and the queue job or batch launch
--   else -> skipped_late
-- The ledger row, the work and the watermark move (last_fire_at = o*,
-- next_due_at = the first occurrence after o*; a once schedule is disabled)
-- commit together. Each cron expression is parsed once per call (schedules
-- sharing one share the parse). Returns the decisions, with `node_id` recorded on each.
create or replace function pgbatch.tick_schedules(node_id text default null, max_schedules integer default 100)
returns setof pgbatch.schedule_fire_info
language plpgsql
as $$
declare
    v_now   constant timestamptz := pgbatch.now();
    s       pgbatch.schedule;
    v_from  timestamptz;
    m       record;
    v_out   text;
    v_fire  pgbatch.schedule_fire;
    v_spec  pgbatch.cron_spec;
    v_exprs text[] := '{}';                 -- the cron expressions parsed in this call ...
    v_specs pgbatch.cron_spec[] := '{}';    -- ... and their parses
    v_i     integer;
begin
    if max_schedules is null or max_schedules < 1 or max_schedules > 10000 then
        perform pgbatch._raise('PB007', format('invalid max_schedules: %s, must be 1 to 10000',
                                               coalesce(max_schedules::text, 'NULL')));
    end if;
    if length(node_id) > 200 then
        perform pgbatch._raise('PB007', 'invalid node_id: longer than 200 characters');
    end if;
    for s in
        select * from pgbatch.schedule x
         where x.enabled and x.next_due_at <= v_now
         order by x.next_due_at
         limit max_schedules
           for update skip locked
    loop
        v_spec := null;
        if s.kind = 'cron' then
            v_i := array_position(v_exprs, s.cron_expr);
            if v_i is null then
                v_spec := pgbatch.cron_parse(s.cron_expr);
                v_exprs := v_exprs || s.cron_expr;
                v_specs := v_specs || v_spec;
            else
                v_spec := v_specs[v_i];
            end if;
        end if;
        v_from := greatest(s.last_fire_at, s.effective_from);
        m := pgbatch._schedule_missed_parsed(s, v_spec, v_from, v_now);
        if m.latest is null then
            update pgbatch.schedule x
               set next_due_at = pgbatch._schedule_next_after_parsed(s, v_spec, greatest(v_from, v_now))
             where x.id = s.id;
            continue;
        end if;
        if v_now - m.latest <= greatest(s.misfire_threshold, coalesce(s.catchup_window, interval '0')) then
            if s.overlap_policy <> 'allow' and pgbatch._schedule_overlap_active(s.id) then
                if s.overlap_policy = 'queue' then
                    update pgbatch.schedule x
                       set next_due_at = v_now + interval '1 second', last_outcome = 'waiting_overlap'
                     where x.id = s.id;
                    continue;
                end if;
                v_out := 'skipped_overlap';
            else
                v_out := 'fired';
            end if;
        else
            v_out := 'skipped_late';
        end if;
        v_fire := pgbatch._schedule_record_fire(s, 'schedule', m.latest, v_out,
                                                greatest(m.occurrences - 1, 0), m.capped,
                                                tick_schedules.node_id, null, v_now);
        if v_fire.schedule_id is null then
            -- impossible: the row lock serialises ticks and every occurrence > watermark is new
            raise exception using errcode = 'P0004',
                message = format('schedule %s: occurrence %s is already in the fire ledger', s.id, m.latest);
        end if;
        update pgbatch.schedule x
           set last_fire_at    = m.latest,
               next_due_at     = case when s.kind = 'once' then null
                                      else pgbatch._schedule_next_after_parsed(s, v_spec, m.latest) end,
               enabled         = s.kind <> 'once',
               coalesced_total = x.coalesced_total + greatest(m.occurrences - 1, 0),
               last_outcome    = v_fire.outcome,
               last_decided_at = v_now,
               version         = x.version + 1
         where x.id = s.id and x.last_fire_at is not distinct from s.last_fire_at;
        if not found then
            raise exception using errcode = 'P0004',
                message = format('schedule %s: its watermark moved under the row lock', s.id);
        end if;
        return next pgbatch._schedule_fire_info(v_fire);
    end loop;
end
$$;
