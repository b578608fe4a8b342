-- register_tasks: a worker records the options of its tasks in the task
-- registry (upsert by name; what enqueue_task reads). `tasks` is a JSON array
-- of {"name", "queue", "priority", "max_attempts", "options"} (options: any
-- JSON object). Returns how many were registered. Refused, changing nothing
-- (InvalidArgument, PB007): not an array, a name that is not 1 to
-- limits() max_kv_key_length characters, a bad queue name (InvalidQueueName,
-- PB005), max_attempts below 1, a priority or max_attempts that is not an
-- integer.
create or replace function pgbatch.register_tasks(node_id text, tasks jsonb)
returns integer
language plpgsql
as $$
declare
    t      jsonb;
    v_name text;
    n      integer := 0;
begin
    if tasks is null or jsonb_typeof(tasks) <> 'array' then
        perform pgbatch._raise('PB007', 'tasks must be a JSON array of task objects');
    end if;
    if node_id is null or length(node_id) not between 1 and pgbatch._limit('max_node_id_length') then
        perform pgbatch._raise('PB007', format('node_id must be 1 to %s characters',
                                               pgbatch._limit('max_node_id_length')));
    end if;
    for t in select value from jsonb_array_elements(tasks) loop
        if jsonb_typeof(t) <> 'object' then
            perform pgbatch._raise('PB007', format('a task must be a JSON object, got %s', t));
        end if;
        v_name := t ->> 'name';
        if v_name is null or length(v_name) not between 1 and pgbatch._limit('max_kv_key_length') then
            perform pgbatch._raise('PB007', format('a task name must be 1 to %s characters, got %s',
                                                   pgbatch._limit('max_kv_key_length'),
                                                   coalesce(t -> 'name', 'null')));
        end if;
        perform pgbatch._check_queue(t ->> 'queue');
        if jsonb_typeof(t -> 'priority') is distinct from 'number'
           or jsonb_typeof(t -> 'max_attempts') is distinct from 'number'
           or (t ->> 'priority')::numeric <> trunc((t ->> 'priority')::numeric)
           or (t ->> 'max_attempts')::numeric <> trunc((t ->> 'max_attempts')::numeric)
           or (t ->> 'priority')::numeric not between -2147483648 and 2147483647
           or (t ->> 'max_attempts')::numeric not between 1 and 2147483647 then
            perform pgbatch._raise('PB007', format('task %L: priority must be an integer and '
                                                   'max_attempts an integer of at least 1', v_name));
        end if;
        if t ? 'options' and jsonb_typeof(t -> 'options') <> 'object' then
            perform pgbatch._raise('PB007', format('task %L: options must be a JSON object', v_name));
        end if;
        insert into pgbatch.task_registry as r
               (name, queue, priority, max_attempts, options, registered_by, registered_at)
        values (v_name, t ->> 'queue', (t ->> 'priority')::integer, (t ->> 'max_attempts')::integer,
                coalesce(t -> 'options', '{}'), node_id, pgbatch.now())
        on conflict (name) do update
           set queue = excluded.queue, priority = excluded.priority,
               max_attempts = excluded.max_attempts, options = excluded.options,
               registered_by = excluded.registered_by, registered_at = excluded.registered_at;
        n := n + 1;
    end loop;
    return n;
end
$$;
