-- Every parameter of a launch in canonical form: InvalidJobParameters (PB040)
-- unless `params` is a JSON object of valid parameters (see _batch_param),
-- with non-empty names. Returns the canonical text of the identifying ones
-- ({"name":{"t":type,"v":value}}, keys sorted, no whitespace), and all of
-- them as stored with an execution ({name: {"type", "value", "identifying"}}).
create or replace function pgbatch._batch_params(params jsonb,
    out identifying_text text, out all_params jsonb)
language plpgsql
immutable
as $$
declare
    p       record;
    r       record;
    v_parts text[] := '{}';
begin
    if params is null or jsonb_typeof(params) <> 'object' then
        perform pgbatch._raise('PB040', 'invalid job parameters: must be a JSON object of {name: value}',
                               format('got %s', coalesce(jsonb_typeof(params), 'NULL')));
    end if;
    all_params := '{}';
    for p in select e.key, e.value from jsonb_each(params) e order by e.key collate "C" loop
        if length(p.key) = 0 then
            perform pgbatch._raise('PB040', 'invalid job parameters: a parameter name must not be empty');
        end if;
        r := pgbatch._batch_param(p.key, p.value);
        if r.problem is not null then
            perform pgbatch._raise('PB040', 'invalid job parameters: ' || r.problem);
        end if;
        if r.identifying then
            v_parts := v_parts || (to_json(p.key)::text || ':{"t":' || to_json(r.type)::text || ',"v":' || r.value || '}');
        end if;
        all_params := all_params || jsonb_build_object(p.key, jsonb_build_object(
            'type', r.type, 'value', r.value::jsonb, 'identifying', r.identifying));
    end loop;
    identifying_text := '{' || array_to_string(v_parts, ',') || '}';
end
$$;
