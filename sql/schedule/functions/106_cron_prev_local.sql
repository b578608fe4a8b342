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
