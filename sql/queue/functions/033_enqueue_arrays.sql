-- enqueue_arrays: the bulk form of enqueue() with one array per field, for
-- programs (the Python client's enqueue_many sends this): no JSON object per
-- request to build, send and decode. Element i of every array is request i;
-- an array given as NULL (or left out) means the default for every request,
-- as does a NULL element:
--   queues        the queue of each job (required, one element per job)
--   payloads      a JSON array with one payload per job (NULL: {} for all)
--   run_ats       NULL: now
--   priorities    NULL: 0
--   dedup_keys    NULL: no key
--   max_attempts  NULL: limits() default_max_attempts
--   ids           NULL: a fresh id
-- Semantics and checks are enqueue_many's (dedup against live jobs and inside
-- the call, given ids probed against live and archived jobs, one NOTIFY per
-- queue, a bad request refused with its index: "invalid enqueue request 3:
-- ..."); arrays of different lengths or more than one dimension, and a
-- payloads value that is not a JSON array of as many elements, are
-- InvalidArgument (PB007). Returns the ids in request order.
create or replace function pgbatch.enqueue_arrays(
    queues       text[],
    payloads     jsonb         default null,
    run_ats      timestamptz[] default null,
    priorities   integer[]     default null,
    dedup_keys   text[]        default null,
    max_attempts integer[]     default null,
    ids          uuid[]        default null
)
returns uuid[]
language plpgsql
as $$
declare
    v_n        integer := coalesce(cardinality(queues), 0);
    v_payloads jsonb[];
    v_attempts integer[];
    v_bad      text;
begin
    if current_setting('pgbatch.relaxed', true) <> '' then
        perform pgbatch._durable_commit();
    end if;
    if queues is null then
        perform pgbatch._raise('PB007', 'enqueue_arrays: queues must be an array of queue names');
    end if;
    select string_agg(format('%s has %s', a.name, case when a.ndims > 1 then a.ndims || ' dimensions' else a.len || ' elements' end), ', ')
      into v_bad
      from (values ('run_ats', array_ndims(run_ats), cardinality(run_ats)),
                   ('priorities', array_ndims(priorities), cardinality(priorities)),
                   ('dedup_keys', array_ndims(dedup_keys), cardinality(dedup_keys)),
                   ('max_attempts', array_ndims(max_attempts), cardinality(max_attempts)),
                   ('ids', array_ndims(ids), cardinality(ids))) as a(name, ndims, len)
     where a.len is not null and (a.ndims > 1 or a.len <> v_n);
    if v_bad is not null or array_ndims(queues) > 1 then
        perform pgbatch._raise('PB007', format(
            'enqueue_arrays: every array must be one-dimensional with one element per queue (%s): %s',
            v_n, coalesce(v_bad, 'queues has more than one dimension')));
    end if;
    if payloads is not null
       and (jsonb_typeof(payloads) <> 'array' or jsonb_array_length(payloads) <> v_n) then
        perform pgbatch._raise('PB007', format(
            'enqueue_arrays: payloads must be a JSON array with one payload per queue (%s), got %s',
            v_n, case when jsonb_typeof(payloads) = 'array'
                      then jsonb_array_length(payloads) || ' elements'
                      else 'a JSON ' || jsonb_typeof(payloads) end));
    end if;
    if v_n = 0 then
        return '{}';
    end if;
    if payloads is null then
        v_payloads := array_fill('{}'::jsonb, array[v_n]);
    else
        select array_agg(e.value order by e.ord) into v_payloads
          from jsonb_array_elements(payloads) with ordinality as e(value, ord);
    end if;
    if max_attempts is null then
        v_attempts := array_fill(pgbatch._limit('default_max_attempts')::integer, array[v_n]);
    elsif array_position(max_attempts, null) is not null then
        select array_agg(coalesce(m.value, pgbatch._limit('default_max_attempts')::integer) order by m.ord)
          into v_attempts
          from unnest(max_attempts) with ordinality as m(value, ord);
    else
        v_attempts := max_attempts;
    end if;
    return pgbatch._insert_jobs(ids, queues, v_payloads, run_ats, priorities, dedup_keys, v_attempts);
end
$$;
