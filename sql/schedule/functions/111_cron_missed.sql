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
