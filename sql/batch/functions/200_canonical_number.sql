-- A number's canonical text: the shortest decimal without exponent or
-- trailing zeros, and 0 for zero (never -0).
create or replace function pgbatch._canonical_number(value numeric)
returns text
language sql
immutable
parallel safe
as $$
    select case when value = 0 then '0' else trim_scale(value)::text end
$$;
