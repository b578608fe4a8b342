-- The occurrences of schedule `s` in (after, until] as the tick decides a
-- fire: _schedule_missed_parsed with the schedule's cron expression parsed
-- here.
create or replace function pgbatch._schedule_missed(s pgbatch.schedule, after timestamptz,
                                                    until timestamptz,
                                                    out latest timestamptz, out occurrences integer,
                                                    out capped boolean)
language plpgsql
stable
as $$
begin
    select m.latest, m.occurrences, m.capped into latest, occurrences, capped
      from pgbatch._schedule_missed_parsed(
               s, case when s.kind = 'cron' then pgbatch.cron_parse(s.cron_expr) end, after, until) m;
end
$$;
