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
