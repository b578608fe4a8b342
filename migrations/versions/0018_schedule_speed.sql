-- pgbatch migration 0018_schedule_speed: the scheduler's tick decides a
-- fire for about a quarter of the server time it took. Missed occurrences are
-- counted by calendar arithmetic where no DST transition is near
-- (_cron_count, _cron_count_day_until; the enumeration stays for the rest),
-- zones of one offset take a short way in next/prev (_tz_fixed), the
-- local-time steps loop over a field's values instead of querying them, the tick
-- parses each cron expression once per call (_schedule_missed_parsed,
-- _schedule_next_after_parsed), and a fired queue job's ledger row is
-- written once (_schedule_job_id). Names, parameters and results of every
-- function are unchanged.
-- FROZEN: never edit this file after release; 0018_schedule_speed.py pins its sha256.

-- ==== schedule/functions/101_tz_fixed.sql ====
-- Whether time zone `tz` has one UTC offset at all times: UTC and its aliases
-- and the fixed Etc/GMT+n / Etc/GMT-n zones. Cron evaluation in such a zone
-- needs no gap or fold handling (_cron_next_after, _cron_prev_at and
-- _cron_count take their short way).
create or replace function pgbatch._tz_fixed(tz text)
returns boolean
language sql
immutable
parallel safe
as $$
    select tz in ('UTC', 'Etc/UTC', 'GMT', 'Etc/GMT', 'UCT', 'Etc/UCT', 'Universal', 'Etc/Universal',
                  'Zulu', 'Etc/Zulu', 'Greenwich', 'Etc/Greenwich', 'GMT0', 'Etc/GMT0', 'GMT+0',
                  'Etc/GMT+0', 'GMT-0', 'Etc/GMT-0')
           or tz ~ '^Etc/GMT[+-][0-9]{1,2}$'
$$;

-- ==== schedule/functions/106_cron_next_local.sql ====
-- The first local wall-clock time at or after `t` (rounded up to a whole
-- second) that matches `spec`, or NULL if there is none before 2200-01-02.
-- Plain calendar arithmetic, no time zone: a month, day, hour or minute that
-- does not match is skipped whole. The next value of a field is found by a
-- loop over its sorted values (no query: this runs for every occurrence).
create or replace function pgbatch._cron_next_local(spec pgbatch.cron_spec, t timestamp)
returns timestamp
language plpgsql
immutable
parallel safe
as $$
declare
    v_next int;
    v_value int;
begin
    if t <> date_trunc('second', t) then
        t := date_trunc('second', t) + interval '1 second';
    end if;
    loop
        if t >= timestamp '2200-01-02' then
            return null;
        end if;
        if not extract(month from t)::int = any(spec.months) then
            v_next := null;
            foreach v_value in array spec.months loop
                if v_value > extract(month from t) then
                    v_next := v_value;
                    exit;
                end if;
            end loop;
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
            v_next := null;
            foreach v_value in array spec.hours loop
                if v_value > extract(hour from t) then
                    v_next := v_value;
                    exit;
                end if;
            end loop;
            t := date_trunc('day', t) + coalesce(make_interval(hours => v_next), interval '1 day');
            continue;
        end if;
        if not extract(minute from t)::int = any(spec.minutes) then
            v_next := null;
            foreach v_value in array spec.minutes loop
                if v_value > extract(minute from t) then
                    v_next := v_value;
                    exit;
                end if;
            end loop;
            t := date_trunc('hour', t) + coalesce(make_interval(mins => v_next), interval '1 hour');
            continue;
        end if;
        if not extract(second from t)::int = any(spec.seconds) then
            v_next := null;
            foreach v_value in array spec.seconds loop
                if v_value > extract(second from t)::int then
                    v_next := v_value;
                    exit;
                end if;
            end loop;
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
-- The mirror image of _cron_next_local (a field's previous value, too, is found
-- by a loop over its sorted values).
create or replace function pgbatch._cron_prev_local(spec pgbatch.cron_spec, t timestamp)
returns timestamp
language plpgsql
immutable
parallel safe
as $$
declare
    v_prev int;
    v_value int;
begin
    t := date_trunc('second', t);
    loop
        if t < timestamp '1899-12-31' then
            return null;
        end if;
        if not extract(month from t)::int = any(spec.months) then
            v_prev := null;
            foreach v_value in array spec.months loop
                exit when v_value >= extract(month from t);
                v_prev := v_value;
            end loop;
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
            v_prev := null;
            foreach v_value in array spec.hours loop
                exit when v_value >= extract(hour from t);
                v_prev := v_value;
            end loop;
            t := date_trunc('day', t) + coalesce(make_interval(hours => v_prev) + interval '59 minutes 59 seconds',
                                                 interval '-1 second');
            continue;
        end if;
        if not extract(minute from t)::int = any(spec.minutes) then
            v_prev := null;
            foreach v_value in array spec.minutes loop
                exit when v_value >= extract(minute from t);
                v_prev := v_value;
            end loop;
            t := date_trunc('hour', t) + coalesce(make_interval(mins => v_prev) + interval '59 seconds',
                                                  interval '-1 second');
            continue;
        end if;
        if not extract(second from t)::int = any(spec.seconds) then
            v_prev := null;
            foreach v_value in array spec.seconds loop
                exit when v_value >= extract(second from t)::int;
                v_prev := v_value;
            end loop;
            t := date_trunc('minute', t) + coalesce(make_interval(secs => v_prev), interval '-1 second');
            continue;
        end if;
        return t;
    end loop;
end
$$;

-- ==== schedule/functions/111_cron_count_day_until.sql ====
-- How many matching times of `spec` the local day of `t` has at or before `t`
-- (whole seconds: a fraction of a second counts as the second it is in); 0
-- when the day does not match. _cron_count's correction at each end of a
-- range. Loops over the (sorted) fields rather than querying them: this runs
-- twice per scheduler decision.
create or replace function pgbatch._cron_count_day_until(spec pgbatch.cron_spec, t timestamp)
returns bigint
language plpgsql
immutable
parallel safe
as $$
declare
    v_hour   constant int := extract(hour from t)::int;
    v_minute constant int := extract(minute from t)::int;
    v_second constant int := floor(extract(second from t))::int;
    v_value  int;
    v_count  bigint := 0;
begin
    if not (extract(month from t)::int = any(spec.months) and pgbatch._cron_day_matches(spec, t)) then
        return 0;
    end if;
    foreach v_value in array spec.hours loop
        exit when v_value >= v_hour;
        v_count := v_count + 1;
    end loop;
    v_count := v_count * cardinality(spec.minutes) * cardinality(spec.seconds);
    if v_hour = any(spec.hours) then
        foreach v_value in array spec.minutes loop
            exit when v_value >= v_minute;
            v_count := v_count + cardinality(spec.seconds);
        end loop;
        if v_minute = any(spec.minutes) then
            foreach v_value in array spec.seconds loop
                exit when v_value > v_second;
                v_count := v_count + 1;
            end loop;
        end if;
    end if;
    return v_count;
end
$$;

-- ==== schedule/functions/111_cron_count.sql ====
-- How many occurrences `spec` has in `tz` in (after, until], counted without
-- enumerating them, or NULL when this count does not apply (then the caller
-- enumerates: _cron_missed). It applies when the range spans at most 400 days
-- and the zone's UTC offset is the same everywhere within two days of it
-- (always in the zones _tz_fixed names; elsewhere checked every 6 hours
-- from two days before `after` to two days after `until`): no gap or fold is
-- then near, every matching local time in (after, until] shifted by that
-- offset is exactly one occurrence, and the count is calendar arithmetic:
-- matching days times the times of day each has, corrected at both ends by
-- the times of day up to `after` and `until` (whole seconds). Ranges near a
-- DST transition, or longer, are left to the enumeration, which is exact
-- there and capped. The same set as _cron_next_after enumerates (a property
-- test checks it, tests/test_cron.py).
create or replace function pgbatch._cron_count(spec pgbatch.cron_spec, tz text, after timestamptz,
                                               until timestamptz)
returns bigint
language plpgsql
immutable
parallel safe
as $$
declare
    v_offset   interval;
    v_from     timestamp;
    v_to       timestamp;
    v_per_day  bigint;
    v_days     bigint;
begin
    if until <= after then
        return 0;
    end if;
    if until - after > interval '400 days' then
        return null;
    end if;
    if pgbatch._tz_fixed(tz) then
        v_offset := pgbatch._tz_offset(tz, after);
    else
        v_offset := pgbatch._tz_offset(tz, after - interval '2 days');
        if pgbatch._tz_offset(tz, until + interval '2 days') <> v_offset
           or exists (select 1
                        from generate_series(after - interval '2 days', until + interval '2 days',
                                             interval '6 hours') p
                       where pgbatch._tz_offset(tz, p) <> v_offset) then
            return null;
        end if;
    end if;
    v_from := (after at time zone 'UTC') + v_offset;
    v_to := (until at time zone 'UTC') + v_offset;
    v_per_day := cardinality(spec.hours)::bigint * cardinality(spec.minutes) * cardinality(spec.seconds);
    -- matching days in [day of v_from, day of v_to): each has all v_per_day times
    v_days := 0;
    if date_trunc('day', v_from) < date_trunc('day', v_to) then
        select count(*) into v_days
          from generate_series(date_trunc('day', v_from), date_trunc('day', v_to) - interval '1 day',
                               interval '1 day') d
         where extract(month from d)::int = any(spec.months) and pgbatch._cron_day_matches(spec, d);
    end if;
    return v_days * v_per_day
           + pgbatch._cron_count_day_until(spec, v_to)
           - pgbatch._cron_count_day_until(spec, v_from);
end
$$;

-- ==== schedule/functions/109_cron_next_after.sql ====
-- The first occurrence of `spec` in `tz` strictly after `after`, or NULL if
-- there is none before 2200. The occurrences are the instants of every
-- matching local wall-clock time (_cron_instants); this scans the matching
-- local times forward from the earliest one that could map after `after`, and
-- stops as soon as no later local time can map before the best found (around
-- a transition local order and instant order differ by the offset change).
-- _cron_prev_at is its mirror: both are the same set, so they agree. In a
-- zone of one offset (_tz_fixed) the first matching local time is the answer.
create or replace function pgbatch._cron_next_after(spec pgbatch.cron_spec, tz text, after timestamptz)
returns timestamptz
language plpgsql
immutable
parallel safe
as $$
declare
    v_every_hour constant boolean := cardinality(spec.hours) = 24;
    v_bounds record;
    v_offset interval;
    v_local timestamp;
    v_stop timestamp;
    v_best timestamptz;
    v_at timestamptz;
begin
    if pgbatch._tz_fixed(tz) then
        -- one offset: local order is instant order, no gap, no fold
        v_offset := pgbatch._tz_offset(tz, after);
        v_local := pgbatch._cron_next_local(spec, (after at time zone 'UTC') + v_offset
                                                  + interval '1 microsecond');
        v_best := (v_local - v_offset) at time zone 'UTC';
        return case when v_best < timestamptz '2200-01-01 00:00Z' then v_best end;
    end if;
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
-- far back the previous occurrence is or how dense the expression is. In a
-- zone of one offset (_tz_fixed) the last matching local time is the answer.
create or replace function pgbatch._cron_prev_at(spec pgbatch.cron_spec, tz text, at timestamptz)
returns timestamptz
language plpgsql
immutable
parallel safe
as $$
declare
    v_every_hour constant boolean := cardinality(spec.hours) = 24;
    v_bounds record;
    v_offset interval;
    v_local timestamp;
    v_stop timestamp;
    v_best timestamptz;
    v_inst timestamptz;
begin
    if pgbatch._tz_fixed(tz) then
        -- one offset: local order is instant order, no gap, no fold
        v_offset := pgbatch._tz_offset(tz, at);
        v_local := pgbatch._cron_prev_local(spec, (at at time zone 'UTC') + v_offset);
        v_best := (v_local - v_offset) at time zone 'UTC';
        return case when v_best >= timestamptz '1900-01-01 00:00Z' then v_best end;
    end if;
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

-- ==== schedule/functions/111_cron_missed.sql ====
-- The occurrences of `spec` in `tz` in (after, until] as the scheduler's tick
-- needs them (BATCH.md §9.2, §9.4): the latest one, how many there are, and
-- whether there are more than `max_scan` (then `occurrences` is max_scan,
-- meaning "at least"). Counted by _cron_count where it applies (no DST
-- transition near the range, at most 400 days), the latest then found
-- directly by _cron_prev_at(until); otherwise enumerated, looking at most at
-- max_scan + 1 occurrences, and past the cap the latest comes from
-- _cron_prev_at(until) too. No occurrence: latest NULL, occurrences 0.
create or replace function pgbatch._cron_missed(spec pgbatch.cron_spec, tz text, after timestamptz,
                                                until timestamptz, max_scan int,
                                                out latest timestamptz, out occurrences int,
                                                out capped boolean)
language plpgsql
immutable
parallel safe
as $$
declare
    v_at    timestamptz := after;
    v_count constant bigint := pgbatch._cron_count(spec, tz, after, until);
begin
    occurrences := 0;
    capped := false;
    if v_count is not null then
        if v_count > 0 then
            latest := pgbatch._cron_prev_at(spec, tz, until);
            occurrences := least(v_count, max_scan);
            capped := v_count > max_scan;
        end if;
        return;
    end if;
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

-- ==== schedule/functions/300_schedule_next_after_parsed.sql ====
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

-- ==== schedule/functions/300_schedule_next_after.sql ====
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

-- ==== schedule/functions/301_schedule_missed_parsed.sql ====
-- The occurrences of schedule `s` in (after, until], as the tick decides a
-- fire (BATCH.md §9.2): the latest one (NULL if none), how many there are,
-- and whether the count stopped at the scan cap of 1000 (then `occurrences`
-- means "at least 1000"; `latest` is still exact). Bounded work however far
-- back `after` is: cron through _cron_missed, interval and once directly.
-- `spec` is cron_parse(s.cron_expr) for a cron schedule (parsed by the
-- caller), ignored for the others.
create or replace function pgbatch._schedule_missed_parsed(s pgbatch.schedule, spec pgbatch.cron_spec,
                                                           after timestamptz, until timestamptz,
                                                           out latest timestamptz, out occurrences integer,
                                                           out capped boolean)
language plpgsql
stable
as $$
declare
    v_every numeric;
    v_hi    numeric;
    v_lo    numeric;
    v_n     numeric;
begin
    latest := null;
    occurrences := 0;
    capped := false;
    if until <= after then
        return;
    end if;
    if s.kind = 'cron' then
        select m.latest, m.occurrences, m.capped into latest, occurrences, capped
          from pgbatch._cron_missed(spec, s.tz, after, until, 1000) m;
    elsif s.kind = 'interval' then
        if until < s.anchor then
            return;
        end if;
        v_every := extract(epoch from s.every);
        v_hi := floor((extract(epoch from until) - extract(epoch from s.anchor)) / v_every);
        v_lo := case when after < s.anchor then 0
                     else floor((extract(epoch from after) - extract(epoch from s.anchor)) / v_every) + 1 end;
        if v_hi >= v_lo then
            v_n := v_hi - v_lo + 1;
            latest := s.anchor + (v_hi * v_every)::double precision * interval '1 second';
            occurrences := least(v_n, 1000)::integer;
            capped := v_n > 1000;
        end if;
    elsif s.kind = 'once' then
        if s.once_at > after and s.once_at <= until then
            latest := s.once_at;
            occurrences := 1;
        end if;
    end if;
end
$$;

-- ==== schedule/functions/301_schedule_missed.sql ====
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

-- ==== schedule/functions/304_schedule_job_id.sql ====
-- The id of the queue job that the fire (schedule_id, source, fire_at) of a
-- queue-target schedule enqueues: derived from the triple, so a retried
-- launch can never enqueue a second job, and known before the launch (the
-- ledger row is written with it). STABLE (to_char is): inlined into its callers.
create or replace function pgbatch._schedule_job_id(schedule_id text, source text, fire_at timestamptz)
returns uuid
language sql
stable
parallel safe
as $$
    select md5('pgbatch.schedule|' || schedule_id || '|' || source || '|'
               || to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::uuid
$$;

-- ==== schedule/functions/304_schedule_launch.sql ====
-- Starts the work of one fire of schedule `s` (in the caller's transaction):
-- target 'queue' enqueues the payload template plus {"schedule": {"id",
-- "source", "fire_at"}} on the schedule's queue, with a job id derived from
-- (schedule, source, fire_at) (_schedule_job_id); target 'batch' launches the job with the
-- parameter template plus the identifying parameters schedule (str) and
-- fire_at (datetime), and a request_id derived from the same triple, so the
-- job instance key is one more guard and a retry is idempotent. A refusal of
-- the SQL API (a PB error: a job no longer registered, a payload over the
-- limit, ...) is returned as `error` instead of raised, so one broken
-- schedule never blocks the others; any other error is raised.
create or replace function pgbatch._schedule_launch(s pgbatch.schedule, source text, fire_at timestamptz,
                                                    out job_id uuid, out job_execution_id bigint,
                                                    out error text)
language plpgsql
as $$
declare
    v_key   constant text := s.id || '|' || source || '|'
                             || to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    v_state text;
    v_msg   text;
begin
    begin
        if s.target = 'queue' then
            job_id := pgbatch.enqueue(
                queue => s.queue,
                payload => s.payload || jsonb_build_object('schedule', jsonb_build_object(
                    'id', s.id, 'source', source,
                    'fire_at', to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                id_override => pgbatch._schedule_job_id(s.id, source, fire_at));
        else
            job_execution_id := pgbatch.launch_job(
                job_name => s.job_name,
                params => s.params || jsonb_build_object(
                    'schedule', s.id,
                    'fire_at', jsonb_build_object('type', 'datetime', 'value',
                        to_char(fire_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))),
                request_id => 'schedule|' || v_key);
            update pgbatch.job_execution x
               set schedule_id = s.id, fire_at = _schedule_launch.fire_at
             where x.id = job_execution_id;
        end if;
    exception when others then
        get stacked diagnostics v_state = returned_sqlstate, v_msg = message_text;
        if left(v_state, 2) <> 'PB' then
            raise;
        end if;
        job_id := null;
        job_execution_id := null;
        error := v_state || ': ' || v_msg;
    end;
end
$$;

-- ==== schedule/functions/306_schedule_record_fire.sql ====
-- Records one decided fire of schedule `s` in the ledger and, for outcome
-- 'fired', starts its work (_schedule_launch) in the same transaction; a
-- refused launch turns the outcome into 'failed' with the error. A queue
-- target's row is written with its job id (_schedule_job_id) and needs no
-- second write when the enqueue succeeds. Returns the row, or NULL when the
-- ledger already holds (schedule, source, fire_at) or the request_id.
create or replace function pgbatch._schedule_record_fire(s pgbatch.schedule, source text, fire_at timestamptz,
                                                         outcome text, coalesced_count integer,
                                                         coalesced_capped boolean, node_id text,
                                                         request_id text, decided_at timestamptz)
returns pgbatch.schedule_fire
language plpgsql
as $$
declare
    v_fire   pgbatch.schedule_fire;
    v_launch record;
begin
    insert into pgbatch.schedule_fire as f
        (schedule_id, source, fire_at, outcome, coalesced_count, coalesced_capped, job_id, node_id,
         request_id, decided_at)
    values (s.id, source, fire_at, outcome, coalesced_count, coalesced_capped,
            case when outcome = 'fired' and s.target = 'queue'
                 then pgbatch._schedule_job_id(s.id, source, fire_at) end,
            node_id, request_id, decided_at)
    on conflict do nothing
    returning f.* into v_fire;
    if not found then
        return null;
    end if;
    if v_fire.outcome = 'fired' then
        v_launch := pgbatch._schedule_launch(s, source, fire_at);
        if v_launch.error is null and v_launch.job_execution_id is null
           and v_launch.job_id = v_fire.job_id then
            return v_fire;            -- the queue job the row names: nothing to add
        end if;
        update pgbatch.schedule_fire f
           set job_id = v_launch.job_id, job_execution_id = v_launch.job_execution_id,
               error = v_launch.error,
               outcome = case when v_launch.error is null then 'fired' else 'failed' end
         where f.schedule_id = s.id and f.source = _schedule_record_fire.source
           and f.fire_at = _schedule_record_fire.fire_at
        returning f.* into v_fire;
    end if;
    return v_fire;
end
$$;

-- ==== schedule/functions/310_tick_schedules.sql ====
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

select pgbatch._apply_privileges();
