-- Enqueues a JSON array of enqueue requests and returns the ids in request
-- order. Used by enqueue_many() and by ack effects. A request is an object
-- with "queue" (required) and optional "payload", "run_at", "priority",
-- "dedup_key", "max_attempts", "id"; any other key is an error. This
-- function checks the JSON (shape, keys, JSON types) and decodes it; the
-- values are validated and inserted by _insert_jobs, as for enqueue()
-- (`taken`: see there).
create or replace function pgbatch._enqueue_requests(requests jsonb, taken uuid default null)
returns uuid[]
language plpgsql
as $$
declare
    v_problem      text[];
    v_id           uuid[];
    v_queue        text[];
    v_payload      jsonb[];
    v_priority     integer[];
    v_run_at       timestamptz[];
    v_max_attempts integer[];
    v_dedup        text[];
begin
    if requests is null or jsonb_typeof(requests) <> 'array' then
        perform pgbatch._raise('PB007', 'enqueue requests must be a JSON array of objects');
    end if;
    if jsonb_array_length(requests) = 0 then
        return '{}';
    end if;

    -- shape: objects, known keys, right JSON types
    select array[c.problem[1], format('invalid enqueue request %s: %s', c.ord - 1, c.problem[2])]
      into v_problem
      from (
        select ord,
               case
                 when jsonb_typeof(req) <> 'object' then array['PB007', 'must be a JSON object']
                 when req - array['queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'] <> '{}'::jsonb
                   then array['PB007', 'unknown key(s): ' || (select string_agg(k, ', ') from jsonb_object_keys(req) k
                                                              where k not in ('queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'))]
                 when jsonb_typeof(req -> 'queue') is distinct from 'string' then array['PB005', 'queue must be a string']
                 when req ? 'run_at' and jsonb_typeof(req -> 'run_at') not in ('string', 'null') then array['PB007', 'run_at must be a timestamp string']
                 when req ? 'priority' and jsonb_typeof(req -> 'priority') not in ('number', 'null') then array['PB007', 'priority must be an integer']
                 when req ? 'max_attempts' and jsonb_typeof(req -> 'max_attempts') not in ('number', 'null') then array['PB007', 'max_attempts must be an integer']
                 when req ? 'dedup_key' and jsonb_typeof(req -> 'dedup_key') not in ('string', 'null') then array['PB007', 'dedup_key must be a string']
                 when req ? 'id' and jsonb_typeof(req -> 'id') not in ('string', 'null') then array['PB007', 'id must be a UUID string']
               end as problem
          from jsonb_array_elements(requests) with ordinality as e(req, ord)
         offset 0
      ) c
     where c.problem is not null
     order by c.ord
     limit 1;
    perform pgbatch._check(v_problem);

    begin
        select array_agg((e.req ->> 'id')::uuid order by e.ord),
               array_agg(e.req ->> 'queue' order by e.ord),
               array_agg(coalesce(e.req -> 'payload', '{}'::jsonb) order by e.ord),
               array_agg((e.req ->> 'priority')::integer order by e.ord),
               array_agg((e.req ->> 'run_at')::timestamptz order by e.ord),
               array_agg(coalesce((e.req ->> 'max_attempts')::integer,
                                  pgbatch._limit('default_max_attempts')::integer) order by e.ord),
               array_agg(e.req ->> 'dedup_key' order by e.ord)
          into v_id, v_queue, v_payload, v_priority, v_run_at, v_max_attempts, v_dedup
          from jsonb_array_elements(requests) with ordinality as e(req, ord);
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid enqueue request: ' || sqlerrm);
    end;

    return pgbatch._insert_jobs(v_id, v_queue, v_payload, v_run_at, v_priority, v_dedup,
                                v_max_attempts, taken);
end
$$;
