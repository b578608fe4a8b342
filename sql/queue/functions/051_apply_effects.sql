-- Applies ack effects in the caller's transaction and returns the ids of the
-- follow-up jobs. `effects` is a JSON object with any of:
--   "enqueue":   array of enqueue requests (see enqueue_many); `settling` is
--                the id of the job being acked, which no follow-up may reuse
--   "kv_put":    object of key -> JSON value, upserted into pgbatch.kv (keys
--                of at most limits() max_kv_key_length characters, values of
--                at most max_kv_value_bytes)
--   "kv_delete": array of keys removed from pgbatch.kv
-- Anything else, and any invalid request or kv entry, is InvalidEffects
-- (PB008); a follow-up id already in use is DuplicateJobId (PB002).
create or replace function pgbatch._apply_effects(effects jsonb, settling uuid default null)
returns uuid[]
language plpgsql
as $$
declare
    v_ids uuid[] := '{}';
    v_bad text;
begin
    if effects is null or effects = 'null'::jsonb or effects = '{}'::jsonb then
        return v_ids;
    end if;
    if jsonb_typeof(effects) <> 'object' then
        perform pgbatch._raise('PB008', format('invalid effects: must be a JSON object, got %s', jsonb_typeof(effects)));
    end if;
    select string_agg(k, ', ') into v_bad from jsonb_object_keys(effects) k
     where k not in ('enqueue', 'kv_put', 'kv_delete');
    if v_bad is not null then
        perform pgbatch._raise('PB008', format('invalid effects: unknown key(s) %s (allowed: enqueue, kv_put, kv_delete)', v_bad));
    end if;
    if effects ? 'enqueue' and jsonb_typeof(effects -> 'enqueue') <> 'array' then
        perform pgbatch._raise('PB008', 'invalid effects: "enqueue" must be an array of enqueue requests');
    end if;
    if effects ? 'kv_put' and jsonb_typeof(effects -> 'kv_put') <> 'object' then
        perform pgbatch._raise('PB008', 'invalid effects: "kv_put" must be an object of key -> value');
    end if;
    if effects ? 'kv_delete' and (jsonb_typeof(effects -> 'kv_delete') <> 'array'
        or exists (select 1 from jsonb_array_elements(effects -> 'kv_delete') e where jsonb_typeof(e) <> 'string')) then
        perform pgbatch._raise('PB008', 'invalid effects: "kv_delete" must be an array of key strings');
    end if;
    if effects ? 'kv_put' then
        select case
                 when length(e.key) > pgbatch._limit('max_kv_key_length')
                   then format('invalid effects: kv_put key of %s characters, at most %s allowed',
                               length(e.key), pgbatch._limit('max_kv_key_length'))
                 else format('invalid effects: kv_put value of key %s is %s bytes, at most %s allowed',
                             left(e.key, 64), pg_column_size(e.value), pgbatch._limit('max_kv_value_bytes'))
               end
          into v_bad
          from jsonb_each(effects -> 'kv_put') e
         where length(e.key) > pgbatch._limit('max_kv_key_length')
            or pg_column_size(e.value) > pgbatch._limit('max_kv_value_bytes')
         limit 1;
        if v_bad is not null then
            perform pgbatch._raise('PB008', v_bad);
        end if;
    end if;

    if effects ? 'enqueue' then
        begin
            v_ids := pgbatch._enqueue_requests(effects -> 'enqueue', settling);
        exception when sqlstate 'PB007' or sqlstate 'PB005' or sqlstate 'PB006'
                    or sqlstate 'PB012' or sqlstate 'PB013' then
            perform pgbatch._raise('PB008', 'invalid effects: ' || sqlerrm);
        end;
    end if;
    if effects ? 'kv_put' then
        insert into pgbatch.kv as kv (key, value, updated_at)
        select e.key, e.value, pgbatch.now() from jsonb_each(effects -> 'kv_put') e
        on conflict (key) do update set value = excluded.value, updated_at = excluded.updated_at;
    end if;
    if effects ? 'kv_delete' then
        delete from pgbatch.kv kv
         where kv.key in (select jsonb_array_elements_text(effects -> 'kv_delete'));
    end if;
    return v_ids;
end
$$;
