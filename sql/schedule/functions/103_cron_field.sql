-- The sorted values one field of a cron expression matches, or InvalidCron
-- (PB020) naming the field. `field` is a comma-separated list of items, each
-- `*`, a value, or a range `a-b`, optionally followed by a step `/n` (`a/n`
-- means `a-hi/n`). Values are numbers in lo..hi, or the names in `names`
-- (case-insensitive; names[1] is the value `name_base`). `expr` and `what`
-- (the field's name) are for the message.
create or replace function pgbatch._cron_field(expr text, what text, field text, lo int, hi int,
                                               names text[] default null, name_base int default 0)
returns int[]
language plpgsql
immutable
parallel safe
as $$
declare
    v_item text;
    v_match text[];
    v_bounds int[];
    v_token text;
    v_value int;
    v_step int;
    v_out int[] := '{}';
    v_bad text;
begin
    foreach v_item in array string_to_array(field, ',') loop
        v_match := regexp_match(v_item, '^(\*|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/([0-9]+))?$');
        if v_match is null or (v_match[1] = '*' and v_match[2] is not null) then
            v_bad := format('%s is not a value, range or step', quote_literal(v_item));
            exit;
        end if;
        v_bounds := '{}';
        foreach v_token in array array_remove(array[v_match[1], v_match[2]], null) loop
            if v_token = '*' then
                v_bounds := array[lo, hi];
                continue;
            end if;
            if v_token ~ '^[0-9]{1,4}$' then
                v_value := v_token::int;
            elsif names is not null and upper(v_token) = any(names) then
                v_value := array_position(names, upper(v_token)) - 1 + name_base;
            else
                v_bad := format('%s is not a value', quote_literal(v_token));
                exit;
            end if;
            if v_value < lo or v_value > hi then
                v_bad := format('%s is out of range %s-%s', v_value, lo, hi);
                exit;
            end if;
            v_bounds := v_bounds || v_value;
        end loop;
        exit when v_bad is not null;
        if cardinality(v_bounds) = 1 then
            -- a single value; with a step it starts a range to the field's end
            v_bounds := array[v_bounds[1], case when v_match[3] is null then v_bounds[1] else hi end];
        end if;
        if v_bounds[1] > v_bounds[2] then
            v_bad := format('range %s is reversed', quote_literal(v_item));
            exit;
        end if;
        v_step := 1;
        if v_match[3] is not null then
            if length(v_match[3]) > 4 or v_match[3]::int < 1 or v_match[3]::int > hi - lo + 1 then
                v_bad := format('step %s must be 1 to %s', quote_literal(v_match[3]), hi - lo + 1);
                exit;
            end if;
            v_step := v_match[3]::int;
        end if;
        v_out := v_out || array(select generate_series(v_bounds[1], v_bounds[2], v_step));
    end loop;
    if v_bad is null and field = '' then
        v_bad := 'empty';
    end if;
    if v_bad is not null then
        perform pgbatch._raise('PB020', format('invalid cron expression %s: %s field %s: %s',
                                               quote_literal(expr), what,
                                               quote_literal(left(field, 64)), v_bad));
    end if;
    return array(select distinct v from unnest(v_out) v order by v);
end
$$;
