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
