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
