-- The first occurrence of schedule `s` strictly after `after`, or NULL when
-- there is none: _schedule_next_after_parsed with the schedule's cron
-- expression parsed here.
create or replace function pgbatch._schedule_next_after(s pgbatch.schedule, after timestamptz)
returns timestamptz
language plpgsql
stable
as $$
begin
    return pgbatch._schedule_next_after_parsed(
        s, case when s.kind = 'cron' then pgbatch.cron_parse(s.cron_expr) end, after);
end
$$;
