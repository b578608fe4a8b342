-- The UTC instants at which the local wall-clock time `t` happens in time zone
-- `tz`, as a cron occurrence (docs/schedules.md, "Daylight saving time"):
-- - a normal time: its one instant;
-- - a time in a gap (clocks jump forward): the pre-transition offset, i.e.
--   shifted forward by the gap (what PostgreSQL's `t at time zone tz` does);
-- - a time in a fold (clocks go back), which happens twice: the first
--   instant, or both when `every_hour` (the hour field matches all 24 hours).
-- The candidates are t minus each offset in effect within a day of PostgreSQL's
-- answer; those whose local time is t are the real instants.
create or replace function pgbatch._cron_instants(tz text, t timestamp, every_hour boolean)
returns timestamptz[]
language plpgsql
immutable
parallel safe
as $$
declare
    v_at constant timestamptz := t at time zone tz;
    v_found timestamptz[];
begin
    if (v_at at time zone tz) <> t then
        return array[v_at];                       -- a gap: shifted forward
    end if;
    select array_agg(distinct c order by c) into v_found
      from unnest(array[v_at - interval '1 day', v_at + interval '1 day']) p,
           lateral (select (t at time zone 'UTC') - pgbatch._tz_offset(tz, p) as c) x
     where (c at time zone tz) = t;
    if v_found is null or not v_at = any(v_found) then
        v_found := array(select distinct c from unnest(v_found || v_at) c order by c);
    end if;
    if cardinality(v_found) > 1 and not every_hour then
        return v_found[1:1];                      -- a fold: the first instant only
    end if;
    return v_found;
end
$$;
