-- Inserts a JSON array of enqueue requests in one statement and returns the
-- ids in request order. Used by enqueue_many() and by ack effects. A request
-- is an object with "queue" (required) and optional "payload", "run_at",
-- "priority", "dedup_key", "max_attempts", "id"; any other key is an error.
-- Dedup applies against live jobs and inside the array (a later request with
-- the same queue and dedup_key gets the earlier one's id). Announces the
-- ready count (and earliest due time) once per queue.
create or replace function pgbatch._enqueue_requests(requests jsonb)
returns uuid[]
language plpgsql
as $$
declare
    v_now          timestamptz := pgbatch.now();
    v_problem      text;
    v_id           uuid[];
    v_leader       uuid[];
    v_queue        text[];
    v_payload      jsonb[];
    v_priority     integer[];
    v_run_at       timestamptz[];
    v_max_attempts integer[];
    v_dedup        text[];
    v_explicit     boolean;
    v_dup          uuid;
    v_count        bigint;
    v_result       uuid[];
begin
    if requests is null or jsonb_typeof(requests) <> 'array' then
        perform pgbatch._raise('PB007', 'enqueue requests must be a JSON array of objects');
    end if;
    if jsonb_array_length(requests) = 0 then
        return '{}';
    end if;

    -- shape: objects, known keys, right JSON types
    select format('request %s: %s', ord - 1, problem) into v_problem
      from (
        select ord,
               case
                 when jsonb_typeof(req) <> 'object' then 'must be a JSON object'
                 when req - array['queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'] <> '{}'::jsonb
                   then 'unknown key(s): ' || (select string_agg(k, ', ') from jsonb_object_keys(req) k
                                                where k not in ('queue', 'payload', 'run_at', 'priority', 'dedup_key', 'max_attempts', 'id'))
                 when jsonb_typeof(req -> 'queue') is distinct from 'string' then 'queue must be a string'
                 when length(req ->> 'queue') = 0 or length(req ->> 'queue') > 128
                   then format('invalid queue name: must be 1 to 128 characters, got %s', length(req ->> 'queue'))
                 when req ? 'run_at' and jsonb_typeof(req -> 'run_at') not in ('string', 'null') then 'run_at must be a timestamp string'
                 when req ? 'priority' and jsonb_typeof(req -> 'priority') not in ('number', 'null') then 'priority must be an integer'
                 when req ? 'max_attempts' and jsonb_typeof(req -> 'max_attempts') not in ('number', 'null') then 'max_attempts must be an integer'
                 when req ? 'max_attempts' and (req ->> 'max_attempts')::numeric < 1 then 'max_attempts must be at least 1'
                 when req ? 'dedup_key' and jsonb_typeof(req -> 'dedup_key') not in ('string', 'null') then 'dedup_key must be a string'
                 when req ? 'id' and jsonb_typeof(req -> 'id') not in ('string', 'null') then 'id must be a UUID string'
                 when req ? 'payload' and pg_column_size(req -> 'payload') > pgbatch.max_payload_bytes()
                   then format('payload too large: %s bytes, at most %s allowed', pg_column_size(req -> 'payload'), pgbatch.max_payload_bytes())
               end as problem
          from jsonb_array_elements(requests) with ordinality as e(req, ord)
      ) checks
     where problem is not null
     order by ord
     limit 1;
    if v_problem is not null then
        if v_problem like '%invalid queue name%' or v_problem like '%queue must be%' then
            perform pgbatch._raise('PB005', v_problem);
        elsif v_problem like '%payload too large%' then
            perform pgbatch._raise('PB006', v_problem);
        end if;
        perform pgbatch._raise('PB007', 'invalid enqueue ' || v_problem);
    end if;

    begin
        select array_agg(x.id order by x.ord),
               array_agg(case when x.dedup_key is null then x.id
                              else x.first_id end order by x.ord),
               array_agg(x.queue order by x.ord),
               array_agg(x.payload order by x.ord),
               array_agg(x.priority order by x.ord),
               array_agg(x.run_at order by x.ord),
               array_agg(x.max_attempts order by x.ord),
               array_agg(x.dedup_key order by x.ord),
               bool_or(x.explicit_id)
          into v_id, v_leader, v_queue, v_payload, v_priority, v_run_at, v_max_attempts, v_dedup, v_explicit
          from (
            select y.*, first_value(y.id) over (partition by y.queue, y.dedup_key order by y.ord) as first_id
              from (
                select e.ord,
                       coalesce((e.req ->> 'id')::uuid, pgbatch.uuid_v7()) as id,
                       e.req ->> 'queue' as queue,
                       coalesce(e.req -> 'payload', '{}'::jsonb) as payload,
                       coalesce((e.req ->> 'priority')::integer, 0) as priority,
                       coalesce((e.req ->> 'run_at')::timestamptz, v_now) as run_at,
                       coalesce((e.req ->> 'max_attempts')::integer, 20) as max_attempts,
                       e.req ->> 'dedup_key' as dedup_key,
                       (e.req ->> 'id') is not null as explicit_id
                  from jsonb_array_elements(requests) with ordinality as e(req, ord)
              ) y
          ) x;
    exception when data_exception then
        perform pgbatch._raise('PB007', 'invalid enqueue request: ' || sqlerrm);
    end;

    if v_explicit then
        select u.id into v_dup
          from unnest(v_id) as u(id)
         where exists (select 1 from pgbatch.job j where j.id = u.id)
            or exists (select 1 from pgbatch.job_archive a where a.id = u.id)
         limit 1;
        if v_dup is null then
            select u.id into v_dup from unnest(v_id) as u(id) group by u.id having count(*) > 1 limit 1;
        end if;
        if v_dup is not null then
            perform pgbatch._raise('PB002', format('duplicate job id %s', v_dup));
        end if;
    end if;

    -- leaders are inserted; a leader that meets a live duplicate is left out
    with ins as (
        insert into pgbatch.job as j (id, queue, payload, priority, run_at, max_attempts, dedup_key, created_at)
        select u.id, u.queue, u.payload, u.priority, u.run_at, u.max_attempts, u.dedup_key, v_now
          from unnest(v_id, v_leader, v_queue, v_payload, v_priority, v_run_at, v_max_attempts, v_dedup)
               with ordinality as u(id, leader, queue, payload, priority, run_at, max_attempts, dedup_key, ord)
         where u.id = u.leader
         order by u.ord
        on conflict (queue, dedup_key) where dedup_key is not null do nothing
        returning j.queue, j.run_at
    )
    select count(pgbatch._announce(p.queue, p.ready, p.due_at)) into v_count
      from (select ins.queue,
                   count(*) filter (where ins.run_at <= v_now) as ready,
                   min(ins.run_at) filter (where ins.run_at > v_now) as due_at
              from ins group by ins.queue) p;

    -- a request with a dedup_key takes the id of the live job holding that
    -- key: the one just inserted, or the duplicate that was already there
    select array_agg(case when u.dedup_key is null then u.leader
                          else (select j.id from pgbatch.job j
                                 where j.queue = u.queue and j.dedup_key = u.dedup_key) end
                     order by u.ord)
      into v_result
      from unnest(v_leader, v_queue, v_dedup) with ordinality as u(leader, queue, dedup_key, ord);

    if array_position(v_result, null) is not null then
        -- the live duplicate was settled while we ran: enqueue those one by one
        for i in 1 .. array_length(v_result, 1) loop
            if v_result[i] is null then
                v_result[i] := pgbatch.enqueue(v_queue[i], v_payload[i], v_run_at[i], v_priority[i],
                                               v_dedup[i], v_max_attempts[i]);
            end if;
        end loop;
    end if;
    return v_result;
end
$$;
