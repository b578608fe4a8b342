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
