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
