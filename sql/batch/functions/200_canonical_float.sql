-- A double's canonical text: the shortest decimal that reads back as the same
-- double (Python's repr), without exponent or trailing zeros. PostgreSQL's
-- own output is round-trip exact but not always shortest (it prints
-- 33083042509669848 where 33083042509669850 is enough), so the digits are
-- cut to the fewest significant ones that still read back the same.
create or replace function pgbatch._canonical_float(value double precision)
returns text
language plpgsql
immutable
parallel safe
set extra_float_digits = 1
as $$
declare
    n   numeric := value::text::numeric;
    e   integer;
    c   numeric;
begin
    if n = 0 then
        return '0';
    end if;
    e := floor(log(10, abs(n)));
    for p in 1 .. 17 loop
        c := round(n, p - 1 - e);
        -- (rounding up may leave the range of double precision)
        if abs(c) <= 1.7976931348623157e308 and c::double precision = value then
            return pgbatch._canonical_number(c);
        end if;
    end loop;
    return pgbatch._canonical_number(n);
end
$$;
