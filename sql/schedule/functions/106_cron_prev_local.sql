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
