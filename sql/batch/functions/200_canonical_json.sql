-- The canonical text of a JSON value (docs/batch.md "Identity"): object keys
-- sorted by code point, no whitespace, strings escaped as JSON does, numbers
-- as the shortest decimal without exponent or trailing zeros (1.50 -> 1.5,
-- 1e2 -> 100). The same rule as pgbatch.batch's Python reference.
create or replace function pgbatch._canonical_json(value jsonb)
returns text
language sql
immutable
parallel safe
as $$
    select case jsonb_typeof(value)
        when 'object' then
            '{' || coalesce((select string_agg(to_json(e.key)::text || ':' || pgbatch._canonical_json(e.value),
                                               ',' order by e.key collate "C")
                               from jsonb_each(value) e), '') || '}'
        when 'array' then
            '[' || coalesce((select string_agg(pgbatch._canonical_json(a.value), ',' order by a.ord)
                               from jsonb_array_elements(value) with ordinality a(value, ord)), '') || ']'
        when 'number' then pgbatch._canonical_number(value::numeric)
        else value::text
    end
$$;
