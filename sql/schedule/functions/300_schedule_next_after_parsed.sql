-- The first occurrence of schedule `s` strictly after `after`, or NULL when
-- there is none (a manual schedule, a once schedule whose instant has passed,
-- a cron expression with no occurrence before 2200). Cron: in the schedule's
-- time zone (docs/schedules.md); interval: anchor + k * every in UTC
-- arithmetic (every as a fixed number of seconds, k >= 0); once: once_at.
-- `spec` is cron_parse(s.cron_expr) for a cron schedule (the caller parsed
-- it once; the tick keeps the parses of one call), ignored for the others.
create or replace function pgbatch._schedule_next_after_parsed(s pgbatch.schedule, spec pgbatch.cron_spec,
                                                             after timestamptz)
returns timestamptz
language plpgsql
stable
as $$
declare
    v_every numeric;
    v_k     numeric;
begin
    if s.kind = 'cron' then
        return pgbatch._cron_next_after(spec, s.tz, after);
    elsif s.kind = 'interval' then
        if after < s.anchor then
            return s.anchor;
        end if;
        v_every := extract(epoch from s.every);
        v_k := floor((extract(epoch from after) - extract(epoch from s.anchor)) / v_every) + 1;
        return s.anchor + (v_k * v_every)::double precision * interval '1 second';
    elsif s.kind = 'once' then
        return case when s.once_at > after then s.once_at end;
    end if;
    return null;
end
$$;
