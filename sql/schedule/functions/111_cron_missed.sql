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
