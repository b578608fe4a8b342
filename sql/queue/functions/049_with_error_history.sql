-- The last_error to store for a failed attempt: `error` with "history", the
-- errors of earlier attempts, newest first, at most limits()
-- error_history_length of them, each without its "traceback" (and without
-- its own "history"). `previous` is the job's last_error so far. An `error`
-- that is not a JSON object (nor NULL) is stored as given, without history;
-- a NULL error after earlier ones stores {"history": [...]}.
create or replace function pgbatch._with_error_history(error jsonb, previous jsonb)
returns jsonb
language sql
immutable
parallel safe
as $$
    select case
        when previous is null or jsonb_typeof(previous) <> 'object'
             or (error is not null and jsonb_typeof(error) <> 'object') then error
        else coalesce(error - 'history', '{}'::jsonb) || jsonb_build_object('history',
            coalesce((select jsonb_agg(h.e order by h.ord)
                        from (select e, ord
                                from jsonb_array_elements(jsonb_build_array(previous - 'history' - 'traceback')
                                                          || coalesce(case when jsonb_typeof(previous -> 'history') = 'array'
                                                                           then previous -> 'history' end, '[]'::jsonb))
                                     with ordinality as x(e, ord)
                               order by ord
                               limit pgbatch._limit('error_history_length')) h), '[]'::jsonb))
    end
$$;
