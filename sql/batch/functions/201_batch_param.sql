-- One job parameter in canonical form, or its problem (InvalidJobParameters,
-- PB040). `spec` is a plain JSON value (string -> str, integral number -> int,
-- other number -> float, boolean -> bool, array -> json; identifying) or an
-- object {"value": ..., "type": ..., "identifying": ...} that spells the type
-- and the flag out ("value" required; a JSON object parameter must be spelled
-- out). Types and accepted values:
--   str       a JSON string
--   int       an integral JSON number, or a string of digits with an optional sign
--   float     a JSON number or a numeric string; value = shortest round-trip decimal
--   decimal   a JSON number or a numeric string; value = exact decimal, no trailing zeros
--   bool      true or false
--   date      "YYYY-MM-DD"
--   datetime  ISO 8601 with a UTC offset or Z; value = UTC, microseconds, "Z"
--   uuid      a UUID string; value = lowercase, hyphenated
--   json      any JSON value; value = its canonical text
-- Returns (type, value: the canonical JSON text of the normalised value,
-- identifying, problem).
create or replace function pgbatch._batch_param(name text, spec jsonb,
    out type text, out value text, out identifying boolean, out problem text)
language plpgsql
immutable
set extra_float_digits = 1
as $$
declare
    v   jsonb;
    t   text;
    k   text;
    n   numeric;
    f   double precision;
    ts  timestamptz;
begin
    identifying := true;
    if jsonb_typeof(spec) = 'object' then
        for k in select jsonb_object_keys(spec) loop
            if k not in ('value', 'type', 'identifying') then
                problem := format('parameter %s: unknown key %s (a parameter object has "value", "type", "identifying"; '
                                  'pass a JSON object as {"type": "json", "value": ...})', to_json(name), to_json(k));
                return;
            end if;
        end loop;
        if not spec ? 'value' then
            problem := format('parameter %s: "value" is missing', to_json(name));
            return;
        end if;
        if spec ? 'identifying' then
            if jsonb_typeof(spec -> 'identifying') <> 'boolean' then
                problem := format('parameter %s: "identifying" must be true or false', to_json(name));
                return;
            end if;
            identifying := (spec ->> 'identifying')::boolean;
        end if;
        if spec ? 'type' and jsonb_typeof(spec -> 'type') <> 'string' then
            problem := format('parameter %s: "type" must be a string', to_json(name));
            return;
        end if;
        v := spec -> 'value';
        t := spec ->> 'type';
    else
        v := spec;
    end if;

    if t is null then
        t := case jsonb_typeof(v)
                 when 'string' then 'str'
                 when 'boolean' then 'bool'
                 when 'array' then 'json'
                 when 'object' then 'json'
                 when 'number' then case when v::text ~ '^-?[0-9]+$' then 'int' else 'float' end
             end;
        if t is null then
            problem := format('parameter %s: null has no type; spell it out as {"type": "json", "value": null}',
                              to_json(name));
            return;
        end if;
    end if;
    type := t;

    if t = 'str' then
        if jsonb_typeof(v) = 'string' then value := v::text; end if;
    elsif t = 'int' then
        if jsonb_typeof(v) = 'number' and scale(v::numeric) = 0 then
            value := pgbatch._canonical_number(v::numeric);
        elsif jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^[+-]?[0-9]+$' then
            value := pgbatch._canonical_number((v #>> '{}')::numeric);
        end if;
    elsif t in ('float', 'decimal') then
        if jsonb_typeof(v) = 'number' then
            n := v::numeric;
        elsif jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$' then
            n := (v #>> '{}')::numeric;
        end if;
        if n is not null and t = 'float' then
            begin
                f := n::double precision;
                value := to_json(pgbatch._canonical_float(f))::text;
            exception when numeric_value_out_of_range then
                value := null;
            end;
        elsif n is not null then
            value := to_json(pgbatch._canonical_number(n))::text;
        end if;
    elsif t = 'bool' then
        if jsonb_typeof(v) = 'boolean' then value := v::text; end if;
    elsif t = 'date' then
        if jsonb_typeof(v) = 'string' and v #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' then
            begin
                value := to_json(to_char((v #>> '{}')::date, 'YYYY-MM-DD'))::text;
            exception when others then
                value := null;
            end;
        end if;
    elsif t = 'datetime' then
        if jsonb_typeof(v) = 'string'
           and v #>> '{}' ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' then
            begin
                ts := (v #>> '{}')::timestamptz;
                value := to_json(to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text;
            exception when others then
                value := null;
            end;
        end if;
    elsif t = 'uuid' then
        if jsonb_typeof(v) = 'string'
           and v #>> '{}' ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' then
            value := to_json((v #>> '{}')::uuid::text)::text;
        end if;
    elsif t = 'json' then
        value := pgbatch._canonical_json(v);
    else
        problem := format('parameter %s: unknown type %s (one of str, int, float, decimal, bool, date, datetime, uuid, json)',
                          to_json(name), to_json(t));
        return;
    end if;
    if value is null then
        problem := format('parameter %s: %s is not a valid %s', to_json(name), left(v::text, 100), t);
    end if;
end
$$;
