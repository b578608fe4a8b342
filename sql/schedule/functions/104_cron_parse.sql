-- Parses a cron expression into pgbatch.cron_spec, or raises InvalidCron
-- (PB020) with a message naming the bad field. Accepted (docs/schedules.md):
-- 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first);
-- lists, ranges and steps; month names JAN-DEC and weekday names SUN-SAT
-- (case-insensitive); weekday 0 and 7 are both Sunday; the macros @yearly,
-- @annually, @monthly, @weekly, @daily, @midnight and @hourly. @reboot is
-- refused (a `once` schedule does that), and so is an expression that can
-- never match (e.g. `0 0 30 2 *`).
create or replace function pgbatch.cron_parse(expr text)
returns pgbatch.cron_spec
language plpgsql
immutable
parallel safe
as $$
declare
    v_text text;
    v_fields text[];
    v_spec pgbatch.cron_spec;
    v_month_days constant int[] := array[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
begin
    if expr is null then
        perform pgbatch._raise('PB020', 'invalid cron expression: NULL');
    end if;
    if length(expr) > 256 then
        perform pgbatch._raise('PB020', format('invalid cron expression %s...: longer than 256 characters',
                                               quote_literal(left(expr, 64))));
    end if;
    v_text := btrim(expr, E' \t\r\n');
    if left(v_text, 1) = '@' then
        v_text := case lower(v_text)
            when '@yearly'   then '0 0 1 1 *'
            when '@annually' then '0 0 1 1 *'
            when '@monthly'  then '0 0 1 * *'
            when '@weekly'   then '0 0 * * 0'
            when '@daily'    then '0 0 * * *'
            when '@midnight' then '0 0 * * *'
            when '@hourly'   then '0 * * * *'
        end;
        if v_text is null then
            if lower(btrim(expr, E' \t\r\n')) = '@reboot' then
                perform pgbatch._raise('PB020', 'invalid cron expression ''@reboot'': not supported',
                                       'A schedule that runs once uses kind ''once'' with its instant.');
            end if;
            perform pgbatch._raise('PB020', format('invalid cron expression %s: unknown macro'
                ' (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)',
                quote_literal(expr)));
        end if;
    end if;
    v_fields := regexp_split_to_array(v_text, '[ \t\r\n]+');
    if cardinality(v_fields) = 5 then
        v_fields := '0'::text || v_fields;
    elsif cardinality(v_fields) <> 6 then
        perform pgbatch._raise('PB020', format('invalid cron expression %s: %s fields, expected 5'
            ' (minute hour day-of-month month day-of-week) or 6 (seconds first)',
            quote_literal(expr), case when v_text = '' then 0 else cardinality(v_fields) end));
    end if;
    v_spec.seconds  := pgbatch._cron_field(expr, 'second', v_fields[1], 0, 59);
    v_spec.minutes  := pgbatch._cron_field(expr, 'minute', v_fields[2], 0, 59);
    v_spec.hours    := pgbatch._cron_field(expr, 'hour', v_fields[3], 0, 23);
    v_spec.days     := pgbatch._cron_field(expr, 'day-of-month', v_fields[4], 1, 31);
    v_spec.months   := pgbatch._cron_field(expr, 'month', v_fields[5], 1, 12,
        array['JAN','FEB','MAR','APR','MAY','JUN','JUL','AUG','SEP','OCT','NOV','DEC'], 1);
    v_spec.weekdays := array(select distinct d % 7 from unnest(pgbatch._cron_field(expr, 'day-of-week',
        v_fields[6], 0, 7, array['SUN','MON','TUE','WED','THU','FRI','SAT'], 0)) d order by 1);
    v_spec.days_restricted := left(v_fields[4], 1) <> '*';
    v_spec.weekdays_restricted := left(v_fields[6], 1) <> '*';
    -- with day-of-week unrestricted only day-of-month decides: it must fit a month
    if v_spec.days_restricted and not v_spec.weekdays_restricted
       and not exists (select 1 from unnest(v_spec.months) m
                        where v_month_days[m] >= v_spec.days[1]) then
        perform pgbatch._raise('PB020', format('invalid cron expression %s: day-of-month field %s'
            ' never matches in month field %s', quote_literal(expr), quote_literal(v_fields[4]),
            quote_literal(v_fields[5])));
    end if;
    return v_spec;
end
$$;
