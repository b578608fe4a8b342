-- pgbatch migration 0007_cron: cron evaluation in SQL (docs/schedules.md).
-- Adds the type pgbatch.cron_spec (a parsed expression), the public functions
-- cron_parse, cron_next, cron_prev, cron_occurrences and cron_missed (5 or 6
-- fields, names, macros, the Vixie day rule; local wall-clock fields in an
-- IANA zone mapped to UTC instants with the DST rules of the scheduler: a gap
-- shifts forward by the gap, a fold fires once unless the hour field matches
-- all 24 hours), the internal helpers they share with the scheduler's tick,
-- and the codes PB020 (InvalidCron) and PB021 (InvalidTimeZone). Additive
-- only: no table changes.
-- FROZEN: never edit this file after release; 0007_cron.py pins its sha256.

set check_function_bodies = off;

-- ==== schedule/schema/100_cron_spec.sql ====
-- A parsed cron expression (pgbatch.cron_parse): the values each field
-- matches, as sorted int arrays, plus whether day-of-month and day-of-week
-- were restricted (their field does not start with '*'), which decides how the
-- two combine (Vixie cron: both restricted -> a day matches if EITHER matches;
-- otherwise both must). Weekdays are 0..6 with 0 = Sunday (7 is read as 0).
-- See docs/schedules.md.
create type pgbatch.cron_spec as (
    seconds             int[],
    minutes             int[],
    hours               int[],
    days                int[],
    months              int[],
    weekdays            int[],
    days_restricted     boolean,
    weekdays_restricted boolean
);

-- ==== schedule/functions/100_tz_problem.sql ====
-- What is wrong with a time zone name, as {sqlstate, message}
-- (InvalidTimeZone, PB021), or NULL when it names an IANA zone PostgreSQL
-- knows. Shape first (letters, digits, '_', '-', '+', '/'-separated parts, at
-- most 64 characters: this refuses POSIX specs such as 'EST5EDT,M3.2.0,M11.1.0'
-- and '<+03>-3'), then PostgreSQL's own lookup. A name without '/' could also
-- be an abbreviation or a POSIX offset ('PST', 'XYZ3'), which AT TIME ZONE
-- would accept: those are checked against pg_timezone_names (slow, so only
-- for them; 'UTC' and 'GMT' are known). PARALLEL RESTRICTED: the lookup runs in
-- an exception block (a subtransaction), which a parallel worker cannot start.
create or replace function pgbatch._tz_problem(tz text)
returns text[]
language plpgsql
stable
parallel restricted
as $$
declare
    v_probe timestamp;
begin
    if tz is null then
        return array['PB021', 'invalid time zone: NULL, must be an IANA time zone name'];
    end if;
    if length(tz) > 64
       or tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' then
        return array['PB021', format('invalid time zone %s: not an IANA time zone name',
                                     quote_literal(left(tz, 80)))];
    end if;
    if strpos(tz, '/') = 0 and tz not in ('UTC', 'GMT')
       and not exists (select 1 from pg_catalog.pg_timezone_names n where n.name = tz) then
        return array['PB021', format('invalid time zone %s: unknown time zone', quote_literal(tz))];
    end if;
    begin
        v_probe := timestamptz '2000-01-01 00:00Z' at time zone tz;
    exception when others then
        return array['PB021', format('invalid time zone %s: unknown time zone', quote_literal(tz))];
    end;
    return null;
end
$$;

-- ==== schedule/functions/101_tz_offset.sql ====
-- The UTC offset of time zone `tz` at instant `at` (local wall clock minus UTC).
create or replace function pgbatch._tz_offset(tz text, at timestamptz)
returns interval
language sql
immutable
parallel safe
as $$ select (at at time zone tz) - (at at time zone 'UTC') $$;

-- ==== schedule/functions/102_cron_time_problem.sql ====
-- What is wrong with an instant `at` given as `what` to a cron function, as
-- {sqlstate, message} (InvalidTime, PB013), or NULL when it is finite and in
-- the range cron evaluation covers, [1900-01-01, 2200-01-01) UTC.
create or replace function pgbatch._cron_time_problem(what text, at timestamptz)
returns text[]
language sql
immutable
parallel safe
as $$
    select case
        when at is null
            then array['PB013', format('invalid %s: NULL, must be a time', what)]
        when not isfinite(at)
            then array['PB013', format('invalid %s: %s, must be a finite time', what, at)]
        when at < timestamptz '1900-01-01 00:00Z' or at >= timestamptz '2200-01-01 00:00Z'
            then array['PB013', format('invalid %s: %s is outside the range of cron evaluation,'
                                       ' 1900-01-01 to 2200-01-01 UTC', what, at)]
    end
$$;

-- ==== schedule/functions/103_cron_field.sql ====
-- The sorted values one field of a cron expression matches, or InvalidCron
-- (PB020) naming the field. `field` is a comma-separated list of items, each
-- `*`, a value, or a range `a-b`, optionally followed by a step `/n` (`a/n`
-- means `a-hi/n`). Values are numbers in lo..hi, or the names in `names`
-- (case-insensitive; names[1] is the value `name_base`). `expr` and `what`
-- (the field's name) are for the message.
create or replace function pgbatch._cron_field(expr text, what text, field text, lo int, hi int,
                                               names text[] default null, name_base int default 0)
returns int[]
language plpgsql
immutable
parallel safe
as $$
declare
    v_item text;
    v_match text[];
    v_bounds int[];
    v_token text;
    v_value int;
    v_step int;
    v_out int[] := '{}';
    v_bad text;
begin
    foreach v_item in array string_to_array(field, ',') loop
        v_match := regexp_match(v_item, '^(\*|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/([0-9]+))?$');
        if v_match is null or (v_match[1] = '*' and v_match[2] is not null) then
            v_bad := format('%s is not a value, range or step', quote_literal(v_item));
            exit;
        end if;
        v_bounds := '{}';
        foreach v_token in array array_remove(array[v_match[1], v_match[2]], null) loop
            if v_token = '*' then
                v_bounds := array[lo, hi];
                continue;
            end if;
            if v_token ~ '^[0-9]{1,4}$' then
                v_value := v_token::int;
            elsif names is not null and upper(v_token) = any(names) then
                v_value := array_position(names, upper(v_token)) - 1 + name_base;
            else
                v_bad := format('%s is not a value', quote_literal(v_token));
                exit;
            end if;
            if v_value < lo or v_value > hi then
                v_bad := format('%s is out of range %s-%s', v_value, lo, hi);
                exit;
            end if;
            v_bounds := v_bounds || v_value;
        end loop;
        exit when v_bad is not null;
        if cardinality(v_bounds) = 1 then
            -- a single value; with a step it starts a range to the field's end
            v_bounds := array[v_bounds[1], case when v_match[3] is null then v_bounds[1] else hi end];
        end if;
        if v_bounds[1] > v_bounds[2] then
            v_bad := format('range %s is reversed', quote_literal(v_item));
            exit;
        end if;
        v_step := 1;
        if v_match[3] is not null then
            if length(v_match[3]) > 4 or v_match[3]::int < 1 or v_match[3]::int > hi - lo + 1 then
                v_bad := format('step %s must be 1 to %s', quote_literal(v_match[3]), hi - lo + 1);
                exit;
            end if;
            v_step := v_match[3]::int;
        end if;
        v_out := v_out || array(select generate_series(v_bounds[1], v_bounds[2], v_step));
    end loop;
    if v_bad is null and field = '' then
        v_bad := 'empty';
    end if;
    if v_bad is not null then
        perform pgbatch._raise('PB020', format('invalid cron expression %s: %s field %s: %s',
                                               quote_literal(expr), what,
                                               quote_literal(left(field, 64)), v_bad));
    end if;
    return array(select distinct v from unnest(v_out) v order by v);
end
$$;

-- ==== schedule/functions/104_cron_parse.sql ====
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

-- ==== schedule/functions/105_cron_day_matches.sql ====
-- Whether the local calendar day of `day` matches the day fields of `spec`:
-- day-of-month and day-of-week both restricted -> either may match (Vixie
-- cron); otherwise both must (an unrestricted field matches every day, or,
-- as in Vixie cron, the days its '*/n' step selects).
create or replace function pgbatch._cron_day_matches(spec pgbatch.cron_spec, day timestamp)
returns boolean
language sql
immutable
parallel safe
as $$
    select case when spec.days_restricted and spec.weekdays_restricted
                then extract(day from day)::int = any(spec.days)
                     or extract(dow from day)::int = any(spec.weekdays)
                else extract(day from day)::int = any(spec.days)
                     and extract(dow from day)::int = any(spec.weekdays)
           end
$$;

-- ==== schedule/functions/106_cron_next_local.sql ====
-- The first local wall-clock time at or after `t` (rounded up to a whole
-- second) that matches `spec`, or NULL if there is none before 2200-01-02.
-- Plain calendar arithmetic, no time zone: a month, day, hour or minute that
-- does not match is skipped whole.
create or replace function pgbatch._cron_next_local(spec pgbatch.cron_spec, t timestamp)
returns timestamp
language plpgsql
immutable
parallel safe
as $$
declare
    v_next int;
begin
    if t <> date_trunc('second', t) then
        t := date_trunc('second', t) + interval '1 second';
    end if;
    loop
        if t >= timestamp '2200-01-02' then
            return null;
        end if;
        if not extract(month from t)::int = any(spec.months) then
            select min(m) into v_next from unnest(spec.months) m where m > extract(month from t);
            if v_next is null then
                t := make_timestamp(extract(year from t)::int + 1, spec.months[1], 1, 0, 0, 0);
            else
                t := make_timestamp(extract(year from t)::int, v_next, 1, 0, 0, 0);
            end if;
            continue;
        end if;
        if not pgbatch._cron_day_matches(spec, t) then
            t := date_trunc('day', t) + interval '1 day';
            continue;
        end if;
        if not extract(hour from t)::int = any(spec.hours) then
            select min(h) into v_next from unnest(spec.hours) h where h > extract(hour from t);
            t := date_trunc('day', t) + coalesce(make_interval(hours => v_next), interval '1 day');
            continue;
        end if;
        if not extract(minute from t)::int = any(spec.minutes) then
            select min(m) into v_next from unnest(spec.minutes) m where m > extract(minute from t);
            t := date_trunc('hour', t) + coalesce(make_interval(mins => v_next), interval '1 hour');
            continue;
        end if;
        if not extract(second from t)::int = any(spec.seconds) then
            select min(s) into v_next from unnest(spec.seconds) s where s > extract(second from t)::int;
            t := date_trunc('minute', t) + coalesce(make_interval(secs => v_next), interval '1 minute');
            continue;
        end if;
        return t;
    end loop;
end
$$;

-- ==== schedule/functions/106_cron_prev_local.sql ====
-- The last local wall-clock time at or before `t` (rounded down to a whole
-- second) that matches `spec`, or NULL if there is none after 1899-12-31.
-- The mirror image of _cron_next_local.
create or replace function pgbatch._cron_prev_local(spec pgbatch.cron_spec, t timestamp)
returns timestamp
language plpgsql
immutable
parallel safe
as $$
declare
    v_prev int;
begin
    t := date_trunc('second', t);
    loop
        if t < timestamp '1899-12-31' then
            return null;
        end if;
        if not extract(month from t)::int = any(spec.months) then
            select max(m) into v_prev from unnest(spec.months) m where m < extract(month from t);
            if v_prev is null then
                t := make_timestamp(extract(year from t)::int - 1, spec.months[cardinality(spec.months)], 1, 0, 0, 0);
            else
                t := make_timestamp(extract(year from t)::int, v_prev, 1, 0, 0, 0);
            end if;
            t := t + interval '1 month' - interval '1 second';
            continue;
        end if;
        if not pgbatch._cron_day_matches(spec, t) then
            t := date_trunc('day', t) - interval '1 second';
            continue;
        end if;
        if not extract(hour from t)::int = any(spec.hours) then
            select max(h) into v_prev from unnest(spec.hours) h where h < extract(hour from t);
            t := date_trunc('day', t) + coalesce(make_interval(hours => v_prev) + interval '59 minutes 59 seconds',
                                                 interval '-1 second');
            continue;
        end if;
        if not extract(minute from t)::int = any(spec.minutes) then
            select max(m) into v_prev from unnest(spec.minutes) m where m < extract(minute from t);
            t := date_trunc('hour', t) + coalesce(make_interval(mins => v_prev) + interval '59 seconds',
                                                  interval '-1 second');
            continue;
        end if;
        if not extract(second from t)::int = any(spec.seconds) then
            select max(s) into v_prev from unnest(spec.seconds) s where s < extract(second from t)::int;
            t := date_trunc('minute', t) + coalesce(make_interval(secs => v_prev), interval '-1 second');
            continue;
        end if;
        return t;
    end loop;
end
$$;

-- ==== schedule/functions/107_cron_instants.sql ====
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

-- ==== schedule/functions/108_cron_offset_bounds.sql ====
-- The least and the greatest UTC offset of `tz` in effect within two days of
-- `at`: the evaluation's bound on how far a local time and its instant lie
-- apart around `at`.
create or replace function pgbatch._cron_offset_bounds(tz text, at timestamptz,
                                                       out least_offset interval,
                                                       out greatest_offset interval)
language sql
immutable
parallel safe
as $$
    select least(a, b, c), greatest(a, b, c)
      from (select pgbatch._tz_offset(tz, at - interval '2 days') as a,
                   pgbatch._tz_offset(tz, at) as b,
                   pgbatch._tz_offset(tz, at + interval '2 days') as c) o
$$;

-- ==== schedule/functions/109_cron_next_after.sql ====
-- The first occurrence of `spec` in `tz` strictly after `after`, or NULL if
-- there is none before 2200. The occurrences are the instants of every
-- matching local wall-clock time (_cron_instants); this scans the matching
-- local times forward from the earliest one that could map after `after`, and
-- stops as soon as no later local time can map before the best found (around
-- a transition local order and instant order differ by the offset change).
-- _cron_prev_at is its mirror: both are the same set, so they agree.
create or replace function pgbatch._cron_next_after(spec pgbatch.cron_spec, tz text, after timestamptz)
returns timestamptz
language plpgsql
immutable
parallel safe
as $$
declare
    v_every_hour constant boolean := cardinality(spec.hours) = 24;
    v_bounds record;
    v_local timestamp;
    v_stop timestamp;
    v_best timestamptz;
    v_at timestamptz;
begin
    v_bounds := pgbatch._cron_offset_bounds(tz, after);
    -- a local time at or before this maps at or before `after`
    v_local := pgbatch._cron_next_local(spec, (after at time zone 'UTC') + v_bounds.least_offset
                                              + interval '1 microsecond');
    while v_local is not null and (v_stop is null or v_local < v_stop) loop
        foreach v_at in array pgbatch._cron_instants(tz, v_local, v_every_hour) loop
            if v_at > after and (v_best is null or v_at < v_best) then
                v_best := v_at;
                -- a local time from here on maps at or after v_best
                v_stop := (v_best at time zone 'UTC')
                          + (pgbatch._cron_offset_bounds(tz, v_best)).greatest_offset;
            end if;
        end loop;
        v_local := pgbatch._cron_next_local(spec, v_local + interval '1 second');
    end loop;
    return case when v_best < timestamptz '2200-01-01 00:00Z' then v_best end;
end
$$;

-- ==== schedule/functions/109_cron_prev_at.sql ====
-- The last occurrence of `spec` in `tz` at or before `at`, or NULL if there is
-- none since 1900. Direct: scans matching local times backwards from the
-- latest one that could map at or before `at` (the mirror of
-- _cron_next_after, over the same occurrences), so it costs the same however
-- far back the previous occurrence is or how dense the expression is.
create or replace function pgbatch._cron_prev_at(spec pgbatch.cron_spec, tz text, at timestamptz)
returns timestamptz
language plpgsql
immutable
parallel safe
as $$
declare
    v_every_hour constant boolean := cardinality(spec.hours) = 24;
    v_bounds record;
    v_local timestamp;
    v_stop timestamp;
    v_best timestamptz;
    v_inst timestamptz;
begin
    v_bounds := pgbatch._cron_offset_bounds(tz, at);
    -- a local time after this maps after `at`
    v_local := pgbatch._cron_prev_local(spec, (at at time zone 'UTC') + v_bounds.greatest_offset);
    while v_local is not null and (v_stop is null or v_local > v_stop) loop
        foreach v_inst in array pgbatch._cron_instants(tz, v_local, v_every_hour) loop
            if v_inst <= at and (v_best is null or v_inst > v_best) then
                v_best := v_inst;
                -- a local time from here back maps at or before v_best
                v_stop := (v_best at time zone 'UTC')
                          + (pgbatch._cron_offset_bounds(tz, v_best)).least_offset;
            end if;
        end loop;
        v_local := pgbatch._cron_prev_local(spec, v_local - interval '1 second');
    end loop;
    return case when v_best >= timestamptz '1900-01-01 00:00Z' then v_best end;
end
$$;

-- ==== schedule/functions/110_cron_between.sql ====
-- The occurrences of `spec` in `tz` in (after, until], ascending, at most
-- `max_count`: repeated _cron_next_after, so the enumeration, next and prev
-- are the same set. The scheduler's tick enumerates with it (scan cap).
create or replace function pgbatch._cron_between(spec pgbatch.cron_spec, tz text, after timestamptz,
                                                 until timestamptz, max_count int)
returns setof timestamptz
language plpgsql
immutable
parallel safe
as $$
declare
    v_at timestamptz := after;
    v_count int := 0;
begin
    while v_count < max_count loop
        v_at := pgbatch._cron_next_after(spec, tz, v_at);
        exit when v_at is null or v_at > until;
        v_count := v_count + 1;
        return next v_at;
    end loop;
end
$$;

-- ==== schedule/functions/111_cron_missed.sql ====
-- The occurrences of `spec` in `tz` in (after, until] as the scheduler's tick
-- needs them (BATCH.md §9.2, §9.4): the latest one, how many there are, and
-- whether the scan stopped at `max_scan` first. The enumeration looks at
-- most max_scan + 1 occurrences; past the cap the latest comes from a direct
-- _cron_prev_at(until) and `occurrences` is max_scan, meaning "at least".
-- No occurrence: latest NULL, occurrences 0.
create or replace function pgbatch._cron_missed(spec pgbatch.cron_spec, tz text, after timestamptz,
                                                until timestamptz, max_scan int,
                                                out latest timestamptz, out occurrences int,
                                                out capped boolean)
language plpgsql
immutable
parallel safe
as $$
declare
    v_at timestamptz := after;
begin
    occurrences := 0;
    capped := false;
    loop
        v_at := pgbatch._cron_next_after(spec, tz, v_at);
        exit when v_at is null or v_at > until;
        if occurrences = max_scan then
            capped := true;
            latest := pgbatch._cron_prev_at(spec, tz, until);
            return;
        end if;
        occurrences := occurrences + 1;
        latest := v_at;
    end loop;
end
$$;

-- ==== schedule/functions/120_cron_next.sql ====
-- The first occurrence of cron expression `expr` in IANA time zone `tz`
-- strictly after `after`, or NULL if there is none before 2200-01-01.
-- Raises InvalidCron (PB020), InvalidTimeZone (PB021), InvalidTime (PB013,
-- `after` NULL, infinite or outside 1900..2200). docs/schedules.md.
create or replace function pgbatch.cron_next(expr text, tz text, after timestamptz)
returns timestamptz
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('after', after));
    return pgbatch._cron_next_after(v_spec, tz, after);
end
$$;

-- ==== schedule/functions/121_cron_prev.sql ====
-- The latest occurrence of cron expression `expr` in IANA time zone `tz` at
-- or before `at`, or NULL if there is none since 1900-01-01. Direct (it does
-- not walk the occurrences between), and the same occurrences as cron_next
-- and cron_occurrences: cron_next(expr, tz, cron_prev(expr, tz, t)) > t.
-- Raises InvalidCron (PB020), InvalidTimeZone (PB021), InvalidTime (PB013).
create or replace function pgbatch.cron_prev(expr text, tz text, at timestamptz)
returns timestamptz
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('at', at));
    return pgbatch._cron_prev_at(v_spec, tz, at);
end
$$;

-- ==== schedule/functions/122_cron_occurrences.sql ====
-- The occurrences of cron expression `expr` in IANA time zone `tz` in
-- (after, until], ascending, at most `max_count` (1 to 10000, default 1000:
-- the scheduler's scan cap). Empty when until <= after. De-duplicated: a gap
-- can map two local times to one instant. Raises InvalidCron (PB020),
-- InvalidTimeZone (PB021), InvalidTime (PB013, `after` or `until` NULL,
-- infinite or outside 1900..2200), InvalidArgument (PB007, max_count).
create or replace function pgbatch.cron_occurrences(expr text, tz text, after timestamptz,
                                                    until timestamptz, max_count integer default 1000)
returns setof timestamptz
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('after', after));
    perform pgbatch._check(pgbatch._cron_time_problem('until', until));
    if max_count is null or max_count < 1 or max_count > 10000 then
        perform pgbatch._raise('PB007', format('invalid max_count: %s, must be 1 to 10000',
                                               coalesce(max_count::text, 'NULL')));
    end if;
    return query select * from pgbatch._cron_between(v_spec, tz, after, until, max_count);
end
$$;

-- ==== schedule/functions/123_cron_missed.sql ====
-- The occurrences of cron expression `expr` in IANA time zone `tz` in
-- (after, until], summarised as the scheduler decides a missed fire: the
-- `latest` one, how many (`occurrences`), and whether the count stopped at
-- `max_scan` (1 to 10000, default 1000: then `occurrences` means "at least
-- max_scan", and `latest` still is the exact latest, found directly). Bounded
-- work however far back `after` is. Raises InvalidCron (PB020),
-- InvalidTimeZone (PB021), InvalidTime (PB013), InvalidArgument (PB007,
-- max_scan).
create or replace function pgbatch.cron_missed(expr text, tz text, after timestamptz,
                                               until timestamptz, max_scan integer default 1000,
                                               out latest timestamptz, out occurrences integer,
                                               out capped boolean)
language plpgsql
stable
parallel restricted
as $$
declare
    v_spec constant pgbatch.cron_spec := pgbatch.cron_parse(expr);
begin
    perform pgbatch._check(pgbatch._tz_problem(tz));
    perform pgbatch._check(pgbatch._cron_time_problem('after', after));
    perform pgbatch._check(pgbatch._cron_time_problem('until', until));
    if max_scan is null or max_scan < 1 or max_scan > 10000 then
        perform pgbatch._raise('PB007', format('invalid max_scan: %s, must be 1 to 10000',
                                               coalesce(max_scan::text, 'NULL')));
    end if;
    select m.latest, m.occurrences, m.capped into latest, occurrences, capped
      from pgbatch._cron_missed(v_spec, tz, after, until, max_scan) m;
end
$$;

-- ==== schedule/privileges/030_schedule_access.sql ====
-- Who may execute the public functions of sql/schedule (see
-- sql/core/schema/090_function_access.sql). Cron evaluation reads no table,
-- but it runs internal helpers (_cron_*, _tz_*, _raise) that no group role may
-- execute itself: SECURITY DEFINER, open to every pgbatch role.
insert into pgbatch.function_access (function_name, granted_to, security_definer) values
    ('cron_parse',       'producer', true),
    ('cron_next',        'producer', true),
    ('cron_prev',        'producer', true),
    ('cron_occurrences', 'producer', true),
    ('cron_missed',      'producer', true)
on conflict (function_name) do update
    set granted_to = excluded.granted_to, security_definer = excluded.security_definer;

reset check_function_bodies;

-- the privileges step: SECURITY DEFINER, pinned search_path, grants.
select pgbatch._apply_privileges();
