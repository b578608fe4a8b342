-- What is wrong with a time zone name, as {sqlstate, message}
-- (InvalidTimeZone, PB021), or NULL when it names an IANA zone PostgreSQL
-- knows. Shape first (letters, digits, '_', '-', '+', '/'-separated parts, at
-- most 64 characters: this refuses POSIX specs such as 'EST5EDT,M3.2.0,M11.1.0'
-- and '<+03>-3'), then PostgreSQL's own lookup. A name without '/' could also
-- be an abbreviation or a POSIX offset ('PST', 'XYZ3'), which AT TIME ZONE
-- would accept: those are checked against pg_timezone_names (slow, so only
-- for them; 'UTC' and 'GMT' are known). PARALLEL RESTRICTED: the lookup runs in
-- an exception block (a subtransaction), which a parallel worker cannot start.
create or replace function pgbatch._tz_problem(tz text)
returns text[]
language plpgsql
stable
parallel restricted
as $$
declare
    v_probe timestamp;
begin
    if tz is null then
        return array['PB021', 'invalid time zone: NULL, must be an IANA time zone name'];
    end if;
    if length(tz) > 64
       or tz !~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$' then
        return array['PB021', format('invalid time zone %s: not an IANA time zone name',
                                     quote_literal(left(tz, 80)))];
    end if;
    if strpos(tz, '/') = 0 and tz not in ('UTC', 'GMT')
       and not exists (select 1 from pg_catalog.pg_timezone_names n where n.name = tz) then
        return array['PB021', format('invalid time zone %s: unknown time zone', quote_literal(tz))];
    end if;
    begin
        v_probe := timestamptz '2000-01-01 00:00Z' at time zone tz;
    exception when others then
        return array['PB021', format('invalid time zone %s: unknown time zone', quote_literal(tz))];
    end;
    return null;
end
$$;
